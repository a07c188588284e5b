"""The clock enqueues the periodic jobs; workers run them."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from app.extensions import redis_queues
from app.schedule import build_scheduler


def test_clock_enqueues_the_mail_relay(app: Flask, run_jobs: Callable[[], int]) -> None:
    with app.app_context():
        scheduler = build_scheduler(redis_queues.connection)
        assert {job.name for job in scheduler.get_jobs()} == {"mail-relay"}
        enqueued = scheduler.enqueue_jobs()
        assert [job.name for job in enqueued] == ["mail-relay"]
        [job_id] = scheduler.get_jobs()[0].get_job_ids(redis_queues.connection)
    run_jobs()
    with app.app_context():
        job = redis_queues.queue("mail").fetch_job(job_id)
        assert job is not None
        assert job.get_status() == "finished"
        assert job.return_value() == 0
