"""Orders, their lines and status history, order numbers, and idempotency keys."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, IdMixin, TimestampMixin, utcnow


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


STATUSES = tuple(s.value for s in OrderStatus)

# PostgreSQL numbers orders from a sequence (concurrent and gap-tolerant); SQLite, which
# serialises writers, from a counter row in ``order_number_counters``.
order_number_seq = sa.Sequence("order_number_seq", metadata=Base.metadata)


class OrderNumberCounter(Base):
    __tablename__ = "order_number_counters"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class Order(IdMixin, TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="status_known"),
        sa.CheckConstraint("subtotal >= 0 AND tax >= 0 AND shipping >= 0 AND total >= 0", name="amounts_non_negative"),
        # Within half a cent: SQLite compares NUMERIC as floating point.
        sa.CheckConstraint("ABS(total - (subtotal + tax + shipping)) < 0.005", name="total_adds_up"),
        sa.CheckConstraint("refunded_amount IS NULL OR refunded_amount <= total", name="refund_within_total"),
        # Keyset pairs for the documented sorts, and the per-customer list.
        sa.Index("ix_orders_created_at_id", "created_at", "id"),
        sa.Index("ix_orders_total_id", "total", "id"),
        sa.Index("ix_orders_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    number: Mapped[str] = mapped_column(sa.String(32), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=OrderStatus.PENDING.value, index=True)
    currency: Mapped[str] = mapped_column(sa.String(3))
    subtotal: Mapped[Decimal]
    tax: Mapped[Decimal]
    shipping: Mapped[Decimal]
    total: Mapped[Decimal]
    shipping_address: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    notes: Mapped[str | None] = mapped_column(sa.Text, default=None)
    tracking_number: Mapped[str | None] = mapped_column(sa.String(100), default=None)
    refunded_amount: Mapped[Decimal | None] = mapped_column(default=None)
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
    shipped_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.position", cascade="all, delete-orphan"
    )
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.at", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Order {self.number} {self.status}>"


class OrderItem(IdMixin, Base):
    """A line: the product's SKU, name and price as they were when the order was placed."""

    __tablename__ = "order_items"
    __table_args__ = (
        sa.UniqueConstraint("order_id", "product_id", name="uq_order_items_order_id_product_id"),
        sa.CheckConstraint("quantity BETWEEN 1 AND 100", name="quantity_in_range"),
        sa.CheckConstraint("unit_price >= 0", name="unit_price_non_negative"),
        sa.CheckConstraint("ABS(line_total - unit_price * quantity) < 0.005", name="line_total_adds_up"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("products.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int]
    sku: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    unit_price: Mapped[Decimal]
    quantity: Mapped[int]
    line_total: Mapped[Decimal]

    order: Mapped[Order] = relationship(back_populates="items")


class OrderEvent(IdMixin, Base):
    """One status change: who, from what, to what, why, when."""

    __tablename__ = "order_events"

    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str] = mapped_column(sa.String(16))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    reason: Mapped[str | None] = mapped_column(sa.Text, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    order: Mapped[Order] = relationship(back_populates="events")


class IdempotencyKey(IdMixin, Base):
    """The stored outcome of a POST /orders sent with an ``Idempotency-Key``.

    Written in the same transaction as the order, so a key exists exactly when its order
    does; a concurrent duplicate waits on the unique index and then replays.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),)

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(sa.String(255))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int]
    response_body: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    response_headers: Mapped[dict[str, str]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
