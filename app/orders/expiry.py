"""Unpaid orders hold their stock for ``ORDER_PAYMENT_MINUTES``; then the clock cancels
them (event reason ``payment_timeout``) and the stock goes back.

Each order is cancelled in its own transaction through the same atomic transition as a
customer's cancel, so a payment or a cancel that lands at the same moment wins or loses
cleanly: the stock comes back exactly once, or not at all if the order was paid.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.db import db, utcnow
from app.orders import service
from app.orders.models import Order, OrderStatus

REASON = "payment_timeout"
BATCH = 500


def cancel_unpaid() -> int:
    """Cancel the orders unpaid for longer than allowed; returns how many were cancelled."""
    cutoff = utcnow() - timedelta(minutes=int(current_app.config["ORDER_PAYMENT_MINUTES"]))
    ids = db.session.scalars(
        sa.select(Order.id)
        .where(Order.status == OrderStatus.PENDING.value, Order.created_at <= cutoff)
        .order_by(Order.created_at)
        .limit(BATCH)
    ).all()
    db.session.rollback()
    return sum(service.expire(order_id=order_id, reason=REASON) for order_id in ids)
