"""The clock enqueues the periodic jobs; workers run them."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from app.extensions import redis_queues
from app.schedule import PERIODIC_FAILURE_TTL_SECONDS, build_scheduler


def test_clock_enqueues_the_periodic_jobs(app: Flask, run_jobs: Callable[[], int]) -> None:
    with app.app_context():
        scheduler = build_scheduler(redis_queues.connection)
        names = {
            "mail-relay",
            "idempotency-purge",
            "retention-purge",
            "unpaid-orders",
            "uploads-upkeep",
            "transfers-relay",
        }
        assert {job.name for job in scheduler.get_jobs()} == names
        enqueued = scheduler.enqueue_jobs()
        assert {job.name for job in enqueued} == names
        job_ids = {job.name: job.get_job_ids(redis_queues.connection)[0] for job in scheduler.get_jobs()}
        # A failure of one stays in the failed registry for a day (RQ's default: a year), the
        # next run doing the same work: rq_failed_jobs does not outlive a passing outage.
        for cron_job in scheduler.get_jobs():
            queued = redis_queues.queue(cron_job.queue_name).fetch_job(job_ids[cron_job.name])
            assert queued is not None and queued.failure_ttl == PERIODIC_FAILURE_TTL_SECONDS == 24 * 3600
    run_jobs()
    with app.app_context():
        for name, queue, idle in (
            ("mail-relay", "mail", 0),
            ("idempotency-purge", "housekeeping", 0),
            ("retention-purge", "housekeeping", {"sessions": 0, "mail_bodies": 0}),
            ("unpaid-orders", "housekeeping", 0),
            ("uploads-upkeep", "media", {"purged": 0, "failed": 0, "relayed": 0, "swept": 0}),
            ("transfers-relay", "housekeeping", {"requeued": 0, "failed": 0}),
        ):
            job = redis_queues.queue(queue).fetch_job(job_ids[name])
            assert job is not None
            assert job.get_status() == "finished", name
            assert job.return_value() == idle


def test_a_clock_whose_release_failed_takes_its_own_lock_back() -> None:
    """A release that failed against a Redis blip clears the lock's token in redis-py,
    though the key stays: the clock must not then wait for its own lock to expire."""
    import redis

    from app.schedule import CLOCK_LOCK_KEY
    from tests.support.services import private_redis

    with private_redis() as url:  # redis-py's lock runs Lua scripts: a real Redis
        connection = redis.Redis.from_url(url)
        clock = build_scheduler(connection, lock_seconds=30)
        assert clock._take_lock()
        clock._lock.local.token = None  # as Lock.release() leaves it when its script fails
        assert connection.get(CLOCK_LOCK_KEY) == clock.name.encode()
        assert clock._take_lock()  # its own lock, renewed
        other = build_scheduler(connection, lock_seconds=30)
        assert not other._take_lock()  # and still nobody else's
