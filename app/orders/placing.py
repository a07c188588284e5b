"""Placing an order: prices from the catalog, stock taken atomically, nothing half-written."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql

from app.db import db, insert_new, inserted_together, new_id, on_postgresql, table_of, utcnow
from app.errors import Conflict, ErrorDetail, InsufficientStock, PermissionDenied, ValidationFailed
from app.mail import service as mail
from app.orders import idempotency, numbers, pricing
from app.orders.idempotency import StoredResponse
from app.orders.models import Order, OrderEvent, OrderItem, OrderStatus
from app.orders.schemas import OrderSchema
from app.permissions import Principal
from app.products.cache import State, catalog_changed
from app.products.models import Product
from app.users.models import User

NOT_FOR_SALE = "This product does not exist or is not for sale."
# What an order line keeps of its product, and what the catalog cache needs of its stock.
_products = table_of(Product)
SNAPSHOT = tuple(_products.c[name] for name in ("id", "sku", "name", "price", "version", "stock", "updated_at"))


@dataclass(frozen=True)
class Placed:
    """A new order, or the stored response of an earlier request with the same key."""

    order: Order | None
    replay: StoredResponse | None = None


def location_of(order_id: uuid.UUID) -> str:
    return f"/api/v1/orders/{order_id}"


def place_order(*, customer: Principal, data: Mapping[str, Any], idempotency_key: str | None) -> Placed:
    user_id = customer.id
    if customer.email_verified_at is None and current_app.config["ORDER_REQUIRES_VERIFIED_EMAIL"]:
        # An order holds stock until it is paid or expires: an account nobody can reach by
        # mail (made by the dozen, and thrown away) does not get to hold any.
        raise PermissionDenied(
            "Verify your email address before placing an order (POST /auth/verify-email/resend mails a new link)"
        )
    key_row = None
    if idempotency_key is not None:
        claimed = idempotency.claim(user_id=user_id, key=idempotency_key, request_hash=idempotency.fingerprint(data))
        if isinstance(claimed, StoredResponse):
            return Placed(order=None, replay=claimed)
        key_row = claimed

    lines: Sequence[Mapping[str, Any]] = data["items"]
    products = _take_stock(lines)
    drawn_number = _check_unpaid_cap(user_id)
    catalog_changed(
        products,
        stock_only=True,
        states={p.id: State.of(p.version, p.stock, p.updated_at) for p in products.values()},
    )

    now = utcnow()
    order_id = new_id()
    items = []
    for position, line in enumerate(lines):
        product = products[line["product_id"]]
        items.append(
            OrderItem(
                id=new_id(),
                order_id=order_id,
                product_id=product.id,
                position=position,
                sku=product.sku,
                name=product.name,
                unit_price=product.price,
                quantity=line["quantity"],
                line_total=pricing.line_total(product.price, line["quantity"]),
            )
        )
    config = current_app.config
    totals = pricing.totals(
        (item.line_total for item in items),
        tax_rate=config["TAX_RATE"],
        shipping_flat=config["SHIPPING_FLAT"],
        free_shipping_over=config["FREE_SHIPPING_OVER"],
    )
    if totals.total > pricing.MAX_AMOUNT:  # (the largest amount: no line or subtotal is larger)
        db.session.rollback()  # the stock taken goes back
        raise ValidationFailed(
            "The order's total is too large",
            details=[{"field": "items", "message": f"The order would come to more than {pricing.MAX_AMOUNT}."}],
        )
    order = Order(
        id=order_id,
        number=numbers.next_number(now, drawn=drawn_number),
        user_id=user_id,
        status=OrderStatus.PENDING.value,
        currency=config["CURRENCY"],
        subtotal=totals.subtotal,
        tax=totals.tax,
        shipping=totals.shipping,
        total=totals.total,
        shipping_address=dict(data["shipping_address"]),
        notes=data.get("notes"),
        created_at=now,
        updated_at=now,
        items=items,
    )
    event = OrderEvent(id=new_id(), order_id=order_id, to_status=order.status, actor_id=user_id, at=now)
    # Written as built, with the confirmation mail, in one statement on PostgreSQL; the
    # order (with its lines) is the answer. What it leaves unset (paid_at,
    # tracking_number, ...) is None here and NULL in its row.
    with inserted_together():
        insert_new(order, *items, event)
        _mail_confirmation(order)
    if key_row is not None:
        idempotency.record(
            key_row,
            StoredResponse(
                status=201, body={"data": OrderSchema().dump(order)}, headers={"Location": location_of(order.id)}
            ),
        )
    db.session.commit()
    return Placed(order=order)


def _for_sale() -> tuple[sa.ColumnElement[bool], ...]:
    return _products.c.deleted_at.is_(None), _products.c.is_active.is_(True)


# The statements of every placement, built once (building and keying one costs about as
# much as running it). Core statements on the tables, not ORM-enabled ones: nothing here
# touches objects in the session, and the ORM's bulk-update path costs more than the SQL.
def _take(product_id: sa.ColumnElement[Any], quantity: sa.ColumnElement[Any]) -> sa.Update:
    """``quantity`` units of ``product_id`` taken if it is for sale and has them; the
    product's snapshot returned."""
    return (
        sa.update(_products)
        .where(_products.c.id == product_id, _products.c.stock >= quantity, *_for_sale())
        .values(
            stock=_products.c.stock - quantity,
            version=_products.c.version + 1,
            updated_at=sa.bindparam("now", type_=_products.c.updated_at.type),
        )
        .returning(*SNAPSHOT)
    )


_TAKE_STOCK = _take(sa.bindparam("product_id"), sa.bindparam("quantity"))
_IDS = sa.bindparam("product_ids", type_=postgresql.ARRAY(sa.Uuid()))
# FOR NO KEY UPDATE, the lock the UPDATE takes anyway: it does not block other orders'
# lines, whose foreign key takes KEY SHARE on the product.
_LOCK_PRODUCTS = (
    sa.select(_products.c.id)
    .where(_products.c.id == sa.func.any_(_IDS))
    .order_by(_products.c.id)
    .with_for_update(key_share=True)
)
_LINES = (
    sa.func.unnest(_IDS, sa.bindparam("quantities", type_=postgresql.ARRAY(sa.Integer())))
    .table_valued(sa.column("product_id", sa.Uuid()), sa.column("quantity", sa.Integer()), name="line")
    .render_derived()
)
_TAKE_ALL_STOCK = _take(_LINES.c.product_id, _LINES.c.quantity)
_users = table_of(User)
_LOCK_CUSTOMER = sa.update(_users).where(_users.c.id == sa.bindparam("user_id")).values(updated_at=_users.c.updated_at)

_orders = table_of(Order)
_PENDING_UP_TO = (
    sa.select(sa.func.count())
    .select_from(
        sa.select(sa.literal(1))
        .select_from(_orders)
        .where(_orders.c.user_id == sa.bindparam("user_id"), _orders.c.status == OrderStatus.PENDING.value)
        .limit(sa.bindparam("cap"))
        .subquery()
    )
    .scalar_subquery()
)
_PENDING = sa.select(_PENDING_UP_TO)
_PENDING_AND_NUMBER = sa.select(_PENDING_UP_TO, numbers.DRAW_FROM_SEQUENCE)


def _check_unpaid_cap(user_id: uuid.UUID) -> int | None:
    """At most ``ORDER_MAX_PENDING`` unpaid orders per customer (each holds stock).

    A write on the customer's row comes first: it locks that row (PostgreSQL) or the
    database (SQLite) until this transaction ends, so two placements by one customer count
    one after the other and cannot both slip under the cap. The count is a statement of its
    own, after the lock: under READ COMMITTED it then sees the other placement's order.

    Where order numbers come from a sequence (PostgreSQL), the same statement draws this
    order's number, which is returned (None elsewhere): a refusal leaves a gap, as any
    failed placement may.
    """
    db.session.execute(_LOCK_CUSTOMER, {"user_id": user_id})
    limit = int(current_app.config["ORDER_MAX_PENDING"])
    parameters = {"user_id": user_id, "cap": limit}
    # Counted up to the cap only: whether there are 3 or 300, the answer is the same.
    drawn: int | None = None
    if numbers.draws_from_sequence():
        pending, drawn = db.session.execute(_PENDING_AND_NUMBER, parameters).one()
    else:
        pending = db.session.scalar(_PENDING, parameters)
    if (pending or 0) >= limit:
        db.session.rollback()
        raise Conflict(
            f"You have {pending} unpaid orders: pay or cancel one before placing another (at most {limit})",
            details=[{"field": None, "message": f"At most {limit} unpaid orders at once."}],
        )
    return drawn


def _take_stock(lines: Sequence[Mapping[str, Any]]) -> dict[uuid.UUID, sa.Row[Any]]:
    """Decrement every line's stock atomically, in product-id order (no deadlocks between
    orders that share products), and return each product as it now is: the snapshot's SKU,
    name and price as they were when the stock was taken (the row stays locked until the
    commit). A product not for sale (unknown, inactive, deleted, or withdrawn by staff a
    moment ago) or short of stock: roll back and say why for each line.

    On PostgreSQL an order of several lines takes two statements, whatever their number:
    its products locked in id order, then one UPDATE for all of them. Elsewhere (SQLite
    serialises writers: no order to keep), and for one line, one UPDATE per line.
    """
    now = utcnow()
    if len(lines) > 1 and on_postgresql():
        ids = [line["product_id"] for line in lines]
        db.session.execute(_LOCK_PRODUCTS, {"product_ids": ids})
        quantities = [line["quantity"] for line in lines]
        rows = db.session.execute(_TAKE_ALL_STOCK, {"product_ids": ids, "quantities": quantities, "now": now})
        taken = {row.id: row for row in rows}
    else:
        taken = {}
        for line in sorted(lines, key=lambda line: line["product_id"]):
            row = db.session.execute(
                _TAKE_STOCK, {"product_id": line["product_id"], "quantity": line["quantity"], "now": now}
            ).first()
            if row is not None:
                taken[row.id] = row
    failed = [index for index, line in enumerate(lines) if line["product_id"] not in taken]
    if failed:
        db.session.rollback()
        _refuse(lines, failed)
    return taken


def _refuse(lines: Sequence[Mapping[str, Any]], failed: Sequence[int]) -> None:
    """Why the lines at ``failed`` could not be taken: gone from sale (422) or short (409)."""
    ids = [lines[i]["product_id"] for i in failed]
    on_sale: dict[uuid.UUID, int] = {
        row.id: row.stock
        for row in db.session.execute(sa.select(Product.id, Product.stock).where(Product.id.in_(ids), *_for_sale()))
    }
    gone: list[ErrorDetail] = [
        {"field": f"items.{i}.product_id", "message": NOT_FOR_SALE}
        for i in failed
        if lines[i]["product_id"] not in on_sale
    ]
    if gone:
        raise ValidationFailed("Some items cannot be ordered", details=gone)
    details: list[ErrorDetail] = []
    for index in failed:
        product_id, requested = lines[index]["product_id"], lines[index]["quantity"]
        left = on_sale[product_id]
        details.append(
            {
                "field": f"items.{index}.quantity",
                "message": f"Requested {requested}, only {left} available.",
                "context": {"product_id": str(product_id), "requested": requested, "available": left},
            }
        )
    raise InsufficientStock(details=details)


def _mail_confirmation(order: Order) -> None:
    user = db.session.get(User, order.user_id)
    if user is None:
        return
    mail.send(
        to=user.email,
        template="order_confirmation",
        context={"full_name": user.full_name, "order": order, "currency": order.currency},
    )
