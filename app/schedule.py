"""Periodic jobs, enqueued by the ``clock`` process (``python worker.py --cron``).

RQ's CronScheduler only enqueues; the workers run the jobs. It has no guard against a
second scheduler, so ``Clock`` adds one: a clock schedules only while it holds a lock in
Redis (``CLOCK_LOCK_KEY``, SET NX with an expiry of ``CLOCK_LOCK_SECONDS``, renewed before
every round of enqueues and at least every third of it, released on exit). A second clock
waits, saying so once, and takes over within ``CLOCK_LOCK_SECONDS`` and a third of them
when the first stops or dies. Each clock registers in RQ under a name of its own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import time
import uuid

from redis import Redis
from redis.exceptions import LockError, RedisError
from rq.cron import CronJob, CronScheduler

from app.auth.tasks import forget_what_served_its_purpose
from app.mail.tasks import relay_unsent_mail
from app.orders.tasks import cancel_unpaid_orders, purge_expired_idempotency_keys
from app.products.transfer.tasks import relay_transfers
from app.uploads.tasks import maintain_uploads

MAIL_RELAY_SECONDS = 60
IDEMPOTENCY_PURGE_SECONDS = 3600
RETENTION_PURGE_SECONDS = 3600
UNPAID_ORDERS_SECONDS = 60
UPLOADS_UPKEEP_SECONDS = 600
TRANSFERS_RELAY_SECONDS = 60
PERIODIC_FAILURE_TTL_SECONDS = 24 * 3600
HOUSEKEEPING = "housekeeping"

CLOCK_LOCK_KEY = "storefront:clock:lock"
CLOCK_LOCK_SECONDS = 45  # config.py's default of CLOCK_LOCK_SECONDS


class ClockLockLost(RuntimeError):
    """Another clock holds the lock this one held (this one stalled past its expiry)."""


class Clock(CronScheduler):
    """RQ's CronScheduler, scheduling only while it holds the clock lock."""

    def __init__(self, connection: Redis, *, logging_level: str, lock_seconds: int) -> None:
        name = f"storefront-clock:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        super().__init__(connection=connection, logging_level=logging_level, name=name)
        self.lock_seconds = lock_seconds
        self._lock = connection.lock(CLOCK_LOCK_KEY, timeout=lock_seconds, thread_local=False)
        self._holding = False

    @property
    def beat_seconds(self) -> float:
        """How often the lock is renewed, or tried by a clock that waits for it."""
        return self.lock_seconds / 3

    def start(self) -> None:
        """Wait for the lock, then run RQ's loop (until SIGTERM, a Redis error or the lock
        lost); release the lock on the way out."""
        self._install_signal_handlers()  # type: ignore[no-untyped-call]  # SIGTERM: StopRequested
        self._wait_for_lock()
        self._holding = True
        try:
            super().start()  # type: ignore[no-untyped-call]  # rq.cron leaves start() unannotated
        finally:
            self._holding = False
            with contextlib.suppress(LockError, RedisError):
                self._lock.release()

    def _wait_for_lock(self) -> None:
        told = False
        while not self._take_lock():
            if not told:
                holder = self.connection.get(CLOCK_LOCK_KEY)
                active = holder.decode(errors="replace") if isinstance(holder, bytes) else holder
                self.log.info("CronScheduler %s: another clock is active (%s): waiting to take over", self.name, active)
                told = True
            time.sleep(self.beat_seconds)
        self.log.info("CronScheduler %s: holds the clock lock", self.name)

    def _take_lock(self) -> bool:
        """Renew the lock if this clock holds it, else take it if it is free."""
        # Its own token, always: a release that failed against a Redis blip has cleared it,
        # and the clock would otherwise wait for its own lock until it expired.
        self._lock.local.token = self.name.encode()
        try:
            self._lock.reacquire()
            return True
        except LockError:  # never taken, or expired (and maybe taken by another clock)
            return bool(self._lock.acquire(blocking=False, token=self.name))

    def enqueue_jobs(self) -> list[CronJob]:
        if self._holding and not self._take_lock():  # checked right before each round
            raise ClockLockLost(f"{self.name} lost the clock lock to another clock")
        return super().enqueue_jobs()

    def calculate_sleep_interval(self) -> float:
        return min(super().calculate_sleep_interval(), self.beat_seconds)


def build_scheduler(connection: Redis, *, logging_level: str = "INFO", lock_seconds: int = CLOCK_LOCK_SECONDS) -> Clock:
    scheduler = Clock(connection, logging_level=logging_level, lock_seconds=lock_seconds)
    logging.getLogger("rq.cron").propagate = True
    # A periodic job's failure stays visible for a day, not RQ's default year: its next run
    # does the same work, and an alert on rq_failed_jobs should not outlive a passing outage.
    register = functools.partial(scheduler.register, failure_ttl=PERIODIC_FAILURE_TTL_SECONDS)
    register(relay_unsent_mail, "mail", interval=MAIL_RELAY_SECONDS, name="mail-relay")
    # Short jobs on the queue workers serve first: a flood of mail (anyone can ask for a
    # reset link) or a queue of imports does not keep unpaid orders holding their stock.
    register(purge_expired_idempotency_keys, HOUSEKEEPING, interval=IDEMPOTENCY_PURGE_SECONDS, name="idempotency-purge")
    register(forget_what_served_its_purpose, HOUSEKEEPING, interval=RETENTION_PURGE_SECONDS, name="retention-purge")
    register(cancel_unpaid_orders, HOUSEKEEPING, interval=UNPAID_ORDERS_SECONDS, name="unpaid-orders")
    register(relay_transfers, HOUSEKEEPING, interval=TRANSFERS_RELAY_SECONDS, name="transfers-relay")
    register(maintain_uploads, "media", interval=UPLOADS_UPKEEP_SECONDS, name="uploads-upkeep")
    return scheduler
