"""Unpaid orders hold their stock for ``ORDER_PAYMENT_MINUTES``; then the clock cancels
them (event reason ``payment_timeout``) and the stock goes back.

Each order is cancelled in its own transaction through the same atomic transition as a
customer's cancel, so a payment or a cancel that lands at the same moment wins or loses
cleanly: the stock comes back exactly once, or not at all if the order was paid.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from app.db import db, utcnow
from app.orders import service
from app.orders.models import Order, OrderStatus

log = logging.getLogger(__name__)

REASON = service.PAYMENT_TIMEOUT
BATCH = 500


def cancel_unpaid() -> int:
    """Cancel the orders unpaid for longer than allowed; returns how many were cancelled.
    An order that fails is logged and skipped; the others are still cancelled, then this
    raises ``ExpiryFailed``."""
    cutoff = utcnow() - service.payment_window()
    ids = db.session.scalars(
        sa.select(Order.id)
        .where(Order.status == OrderStatus.PENDING.value, Order.created_at <= cutoff)
        .order_by(Order.created_at)
        .limit(BATCH)
    ).all()
    db.session.rollback()
    cancelled, failed = 0, []
    for order_id in ids:
        try:
            cancelled += service.expire(order_id=order_id, reason=REASON)
        except Exception:  # one order's failure must not keep every later one holding stock
            db.session.rollback()
            log.exception("could not cancel unpaid order %s", order_id)
            failed.append(order_id)
    if failed:  # the job fails (visible, retried) once the others are done
        raise ExpiryFailed(f"{len(failed)} of {len(ids)} unpaid orders could not be cancelled: {failed[0]}, …")
    return cancelled


class ExpiryFailed(RuntimeError):
    """Some unpaid orders could not be cancelled (each logged with its cause)."""
