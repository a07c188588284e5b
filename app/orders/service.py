"""Reading orders and moving them through the state machine."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from app.db import db, utcnow
from app.errors import InvalidState, NotFound, PermissionDenied, ValidationFailed
from app.mail import service as mail
from app.orders import permissions
from app.orders.models import Order, OrderEvent, OrderStatus
from app.orders.states import TRANSITIONS
from app.pagination import Page, SortKey, paginate
from app.permissions import Principal
from app.products.cache import catalog_changed
from app.products.models import Product
from app.users.models import User

SORTABLE = {"created_at": Order.created_at, "total": Order.total}


def get(*, principal: Principal, order_id: uuid.UUID) -> Order:
    """The order if the caller may see it; otherwise it does not exist (404)."""
    order = db.session.scalar(sa.select(Order).where(Order.id == order_id).options(selectinload(Order.items)))
    if order is None or not permissions.can_view(principal, order):
        raise NotFound("Order not found")
    return order


def list_(*, principal: Principal, args: Mapping[str, Any]) -> Page[Order]:
    stmt = sa.select(Order).options(selectinload(Order.items))
    if permissions.sees_all_orders(principal):
        if "user_id" in args:
            stmt = stmt.where(Order.user_id == args["user_id"])
    elif "user_id" in args:
        raise ValidationFailed(details=[{"field": "user_id", "message": "Only staff can filter by user."}])
    else:
        stmt = stmt.where(Order.user_id == principal.id)
    if "status" in args:
        stmt = stmt.where(Order.status == args["status"])
    if "created_after" in args:
        stmt = stmt.where(Order.created_at >= args["created_after"])
    if "created_before" in args:
        stmt = stmt.where(Order.created_at < args["created_before"])
    return paginate(stmt, args, sortable=SORTABLE, default_sort=[SortKey("created_at", True)], tiebreak=Order.id)


def events(*, principal: Principal, order_id: uuid.UUID) -> Sequence[OrderEvent]:
    order = get(principal=principal, order_id=order_id)
    return list(
        db.session.scalars(sa.select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.at))
    )


def pay(*, principal: Principal, order_id: uuid.UUID) -> Order:
    """Simulated payment: a payment provider plugs in here."""
    order = _locked(principal, order_id)
    if not permissions.can_pay(principal, order):
        raise PermissionDenied("Only the customer who placed the order can pay for it")
    _transition(order, "pay", actor_id=principal.id, reason=None)
    db.session.commit()
    return order


def cancel(*, principal: Principal, order_id: uuid.UUID, reason: str | None) -> Order:
    """Cancel a pending or paid order: its stock goes back, a paid one is refunded."""
    order = _locked(principal, order_id)
    if not permissions.can_cancel(principal, order):
        raise PermissionDenied("You cannot cancel this order")
    was_paid = order.status == OrderStatus.PAID
    _transition(order, "cancel", actor_id=principal.id, reason=reason)
    for item in sorted(order.items, key=lambda i: i.product_id):
        db.session.execute(
            sa.update(Product)
            .where(Product.id == item.product_id)
            .values(stock=Product.stock + item.quantity, version=Product.version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    catalog_changed((item.product_id for item in order.items), stock_only=True)
    if was_paid:
        order.refunded_amount = order.total
    _notify(order, "order_cancelled", reason=reason)
    db.session.commit()
    return order


def ship(*, principal: Principal, order_id: uuid.UUID, tracking_number: str | None) -> Order:
    order = _locked(principal, order_id)
    _transition(order, "ship", actor_id=principal.id, reason=None)
    order.tracking_number = tracking_number
    _notify(order, "order_shipped", reason=None)
    db.session.commit()
    return order


def deliver(*, principal: Principal, order_id: uuid.UUID) -> Order:
    order = _locked(principal, order_id)
    _transition(order, "deliver", actor_id=principal.id, reason=None)
    db.session.commit()
    return order


def _locked(principal: Principal, order_id: uuid.UUID) -> Order:
    """The order, row-locked for the rest of the transaction (transitions are serialised)."""
    order = db.session.scalar(
        sa.select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .options(selectinload(Order.items))
        .execution_options(populate_existing=True)
    )
    if order is None or not permissions.can_view(principal, order):
        raise NotFound("Order not found")
    return order


def _transition(order: Order, name: str, *, actor_id: uuid.UUID, reason: str | None) -> None:
    transition = TRANSITIONS[name]
    if order.status not in transition.sources:
        allowed = ", ".join(sorted(transition.sources))
        raise InvalidState(f"Cannot {name} an order that is {order.status} (only when {allowed})")
    now = utcnow()
    db.session.add(
        OrderEvent(
            order_id=order.id,
            from_status=order.status,
            to_status=transition.target.value,
            actor_id=actor_id,
            reason=reason,
            at=now,
        )
    )
    order.status = transition.target.value
    setattr(order, transition.timestamp, now)
    order.updated_at = now


def _notify(order: Order, template: str, *, reason: str | None) -> None:
    user = db.session.get(User, order.user_id)
    if user is not None:
        mail.send(
            to=user.email,
            template=template,
            context={"full_name": user.full_name, "order": order, "currency": order.currency, "reason": reason},
        )
