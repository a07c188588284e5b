"""Periodic jobs, enqueued by the ``clock`` process (``python worker.py --cron``).

RQ's CronScheduler only enqueues; the workers run the jobs. Run exactly one clock
process; the jobs are idempotent, so an accidental second one costs only duplicate work.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq.cron import CronScheduler

from app.mail.tasks import relay_unsent_mail
from app.orders.tasks import cancel_unpaid_orders, purge_expired_idempotency_keys
from app.products.transfer.tasks import relay_transfers
from app.uploads.tasks import maintain_uploads

MAIL_RELAY_SECONDS = 60
IDEMPOTENCY_PURGE_SECONDS = 3600
UNPAID_ORDERS_SECONDS = 60
UPLOADS_UPKEEP_SECONDS = 600
TRANSFERS_RELAY_SECONDS = 60
HOUSEKEEPING = "housekeeping"


def build_scheduler(connection: Redis, *, logging_level: str = "INFO") -> CronScheduler:
    scheduler = CronScheduler(connection=connection, logging_level=logging_level, name="storefront-clock")
    logging.getLogger("rq.cron").propagate = True
    scheduler.register(relay_unsent_mail, "mail", interval=MAIL_RELAY_SECONDS, name="mail-relay")
    # Short jobs on the queue workers serve first: a flood of mail (anyone can ask for a
    # reset link) or a queue of imports does not keep unpaid orders holding their stock.
    scheduler.register(
        purge_expired_idempotency_keys, HOUSEKEEPING, interval=IDEMPOTENCY_PURGE_SECONDS, name="idempotency-purge"
    )
    scheduler.register(cancel_unpaid_orders, HOUSEKEEPING, interval=UNPAID_ORDERS_SECONDS, name="unpaid-orders")
    scheduler.register(relay_transfers, HOUSEKEEPING, interval=TRANSFERS_RELAY_SECONDS, name="transfers-relay")
    scheduler.register(maintain_uploads, "media", interval=UPLOADS_UPKEEP_SECONDS, name="uploads-upkeep")
    return scheduler
