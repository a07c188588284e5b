"""Reading orders and moving them through the state machine."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
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
from app.products.models import INT_MAX, Product
from app.users.models import User

PAYMENT_TIMEOUT = "payment_timeout"  # the event reason of an order cancelled for want of payment

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
    if order.status == OrderStatus.PENDING.value and utcnow() >= order.created_at + payment_window():
        # Its hold has run out (the clock cancels such orders within a minute, or later if
        # it is held up): cancelled now as the clock would, never paid for stock it no
        # longer holds.
        _expire_locked(order, PAYMENT_TIMEOUT)
        db.session.commit()
        raise InvalidState(
            f"The order was not paid within {payment_window().total_seconds() / 60:g} minutes: "
            "it is cancelled and its stock released"
        )
    _transition(order, "pay", actor_id=principal.id, reason=None)
    db.session.commit()
    return order


def payment_window() -> timedelta:
    """How long an unpaid order holds its stock (``ORDER_PAYMENT_MINUTES``)."""
    return timedelta(minutes=int(current_app.config["ORDER_PAYMENT_MINUTES"]))


def cancel(*, principal: Principal, order_id: uuid.UUID, reason: str | None) -> Order:
    """Cancel a pending or paid order: its stock goes back, a paid one is refunded."""
    order = _locked(principal, order_id)
    if not permissions.can_cancel(principal, order):
        raise PermissionDenied("You cannot cancel this order")
    previous = _transition(order, "cancel", actor_id=principal.id, reason=reason)
    restock(order)
    if previous == OrderStatus.PAID:
        order.refunded_amount = order.total
    _notify(order, "order_cancelled", reason=reason)
    db.session.commit()
    return order


def expire(*, order_id: uuid.UUID, reason: str) -> bool:
    """The clock's cancellation of an order left unpaid: False if it is no longer pending
    (paid or cancelled meanwhile, by a request that won the race)."""
    order = db.session.scalar(
        sa.select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .options(selectinload(Order.items))
        .execution_options(populate_existing=True)
    )
    if order is None:
        db.session.rollback()
        return False
    try:
        _expire_locked(order, reason)
    except InvalidState:
        db.session.rollback()
        return False
    db.session.commit()
    return True


def _expire_locked(order: Order, reason: str) -> None:
    """Cancel a locked order left unpaid, and give its stock back (uncommitted)."""
    _transition(order, "expire", actor_id=None, reason=reason)
    restock(order)
    _notify(order, "order_cancelled", reason="not paid in time")


def restock(order: Order) -> None:
    """Give the order's stock back (only after a transition that happens once succeeded).
    A product's stock stops at ``INT_MAX`` (staff may have set it there since the sale):
    a cancel never fails for want of room."""
    for item in sorted(order.items, key=lambda i: i.product_id):
        returned = sa.case((Product.stock > INT_MAX - item.quantity, INT_MAX), else_=Product.stock + item.quantity)
        db.session.execute(
            sa.update(Product)
            .where(Product.id == item.product_id)
            .values(stock=returned, version=Product.version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    catalog_changed((item.product_id for item in order.items), stock_only=True)


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
    """The order, row-locked for the rest of the transaction where the database can (not
    SQLite: there ``_transition``'s conditional UPDATE alone keeps transitions atomic)."""
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


def _transition(order: Order, name: str, *, actor_id: uuid.UUID | None, reason: str | None) -> str:
    """Move ``order`` along ``name``; returns the status it left.

    One conditional UPDATE (``... WHERE status = <the status read>``) makes the move: of
    two requests that both read the same status, exactly one matches, on every database
    (a row lock is no guarantee on SQLite). The loser reads the status again and decides
    anew (a cancel that lost to a payment cancels the paid order).
    """
    transition = TRANSITIONS[name]
    for _ in range(3):
        current = order.status
        if current not in transition.sources:
            allowed = ", ".join(sorted(transition.sources))
            raise InvalidState(f"Cannot {name} an order that is {current} (only when {allowed})")
        now = utcnow()
        moved = db.session.execute(
            sa.update(Order)
            .where(Order.id == order.id, Order.status == current)
            .values(
                {
                    Order.status: transition.target.value,
                    getattr(Order, transition.timestamp): now,
                    Order.updated_at: now,
                }
            )
            .execution_options(synchronize_session="evaluate")
        )
        if getattr(moved, "rowcount", 0) == 1:
            db.session.add(
                OrderEvent(
                    order_id=order.id,
                    from_status=current,
                    to_status=transition.target.value,
                    actor_id=actor_id,
                    reason=reason,
                    at=now,
                )
            )
            return current
        db.session.refresh(order)
    raise InvalidState(f"The order changed while it was being updated; try again ({order.status})")


def _notify(order: Order, template: str, *, reason: str | None) -> None:
    user = db.session.get(User, order.user_id)
    if user is not None:
        mail.send(
            to=user.email,
            template=template,
            context={"full_name": user.full_name, "order": order, "currency": order.currency, "reason": reason},
        )
