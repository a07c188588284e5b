"""The order state machine, in one table."""

from __future__ import annotations

from dataclasses import dataclass

from app.orders.models import OrderStatus


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[OrderStatus]
    target: OrderStatus
    timestamp: str  # the Order column stamped when it happens


TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition("pay", frozenset({OrderStatus.PENDING}), OrderStatus.PAID, "paid_at"),
        Transition("ship", frozenset({OrderStatus.PAID}), OrderStatus.SHIPPED, "shipped_at"),
        Transition("deliver", frozenset({OrderStatus.SHIPPED}), OrderStatus.DELIVERED, "delivered_at"),
        Transition("cancel", frozenset({OrderStatus.PENDING, OrderStatus.PAID}), OrderStatus.CANCELLED, "cancelled_at"),
        # The clock's: an order left unpaid past ORDER_PAYMENT_MINUTES gives its stock back.
        Transition("expire", frozenset({OrderStatus.PENDING}), OrderStatus.CANCELLED, "cancelled_at"),
    )
}
