"""Jobs are enqueued only after commit, run in their own context, and fail visibly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from app.db import db
from app.extensions import redis_queues
from app.jobs import enqueue_after_commit
from tests.conftest import SERVICES, _service_environ
from tests.support.widgets import Widget, fail_always, record_widget

ROOT = Path(__file__).resolve().parents[2]
RECORDED = "test:widgets:recorded"


def recorded(app: Flask) -> set[str]:
    with app.app_context():
        return {m.decode() for m in redis_queues.connection.smembers(RECORDED)}


def test_job_runs_after_commit(app: Flask, client: FlaskClient, run_jobs: Callable[[], int]) -> None:
    assert client.post("/api/v1/_test/widgets", json={"name": "Sprocket", "price": "3.50"}).status_code == 201
    run_jobs()
    assert recorded(app) == {"Sprocket"}


def test_rolled_back_transaction_enqueues_nothing(app: Flask, run_jobs: Callable[[], int]) -> None:
    with app.app_context():
        db.session.add(Widget(name="Ghost", price=1))
        enqueue_after_commit("mail", record_widget, "Ghost")
        db.session.rollback()
        assert all(q.count == 0 for q in redis_queues.all_queues())
    run_jobs()
    assert recorded(app) == set()


def test_failed_request_enqueues_nothing(app: Flask, client: FlaskClient, run_jobs: Callable[[], int]) -> None:
    assert client.post("/api/v1/_test/widgets", json={"name": "Dup", "price": "1"}).status_code == 201
    run_jobs()
    response = client.post("/api/v1/_test/widgets", json={"name": "Dup", "price": "2"})
    assert response.status_code == 409
    run_jobs()
    assert recorded(app) == {"Dup"}


def test_every_job_of_one_commit_is_enqueued_with_its_own_queue_and_options(
    app: Flask, run_jobs: Callable[[], int]
) -> None:
    """A commit's jobs go to Redis together (one round trip): each keeps its queue, id,
    retries and description, and each runs."""
    with app.app_context():
        enqueue_after_commit("mail", record_widget, "First", job_id="first-of-two", retries=1)
        enqueue_after_commit(
            "imports", record_widget, "Second", job_id="second-of-two", retries=3, description="the second"
        )
        db.session.commit()
        first = redis_queues.queue("mail").fetch_job("first-of-two")
        second = redis_queues.queue("imports").fetch_job("second-of-two")
        assert first is not None and second is not None
        assert (first.origin, first.retries_left) == ("mail", 1)
        assert (second.origin, second.retries_left, second.description) == ("imports", 3, "the second")
    run_jobs()
    assert recorded(app) == {"First", "Second"}


def test_failing_job_is_retried_and_visible(app: Flask, run_jobs: Callable[[], int]) -> None:
    with app.app_context():
        enqueue_after_commit("mail", fail_always, "bad", job_id="always-fails", retries=2)
        db.session.commit()
    run_jobs()
    with app.app_context():
        queue = redis_queues.queue("mail")
        job = queue.fetch_job("always-fails")
        assert job is not None
        if SERVICES:
            # A real worker failed it once and scheduled a retry with backoff.
            assert job.retries_left == 1
            assert job.get_status() == "scheduled"
            assert "always-fails" in ScheduledJobRegistry(queue=queue).get_job_ids()
        else:
            # In-process execution has no scheduler: the failure is recorded at once.
            assert "always-fails" in FailedJobRegistry(queue=queue).get_job_ids()
            result = job.latest_result()
            assert result is not None
            assert "cannot process bad" in (result.exc_string or "")


def test_worker_without_redis_explains_and_exits_zero() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "APP_ENV"}}
    env["DATABASE_URL"] = "sqlite:///:memory:"
    proc = subprocess.run([sys.executable, "worker.py", "--burst"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0
    assert "REDIS_URL is not set" in proc.stdout


@pytest.mark.services
def test_worker_process_runs_queued_jobs(app: Flask, client: FlaskClient) -> None:
    assert client.post("/api/v1/_test/widgets", json={"name": "Cog", "price": "2.00"}).status_code == 201
    with app.app_context():
        assert redis_queues.queue("mail").count == 1
    proc = subprocess.run(
        [sys.executable, "worker.py", "--burst"],
        capture_output=True,
        text=True,
        env=_service_environ(),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recorded(app) == {"Cog"}
    with app.app_context():
        assert redis_queues.queue("mail").count == 0
    # Log lines written inside a job carry its id.
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    job_lines = [ln for ln in lines if ln["message"] == "recorded widget Cog"]
    assert len(job_lines) == 1 and job_lines[0]["job_id"]
