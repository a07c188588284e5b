"""RQ jobs of the orders domain."""

from __future__ import annotations

import logging

from app.jobs import task
from app.orders import expiry, idempotency

log = logging.getLogger(__name__)


@task
def purge_expired_idempotency_keys() -> int:
    """Periodic: forget Idempotency-Key responses older than their 24 h window."""
    purged = idempotency.purge_expired()
    if purged:
        log.info("purged %d expired idempotency key(s)", purged)
    return purged


@task
def cancel_unpaid_orders() -> int:
    """Periodic: cancel orders left unpaid past ORDER_PAYMENT_MINUTES; their stock goes back."""
    cancelled = expiry.cancel_unpaid()
    if cancelled:
        log.info("cancelled %d unpaid order(s)", cancelled)
    return cancelled
