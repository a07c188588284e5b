"""Heroku Redis: TLS (``rediss://``) with a self-signed certificate, which the add-on
rewrites into ``REDIS_URL`` whenever it rotates credentials. ``REDIS_TLS_VERIFY=false``
makes every Redis client of the app (queues, rate limits, the catalog cache, the worker)
accept it; by default a certificate nobody vouches for is refused.

The Procfile's processes (gunicorn serving ``wsgi:app``, ``worker.py``) against a private
Redis that speaks TLS only, on the suite's database."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from rq import Queue
from rq.registry import FailedJobRegistry

from app.extensions import db
from app.mail.models import OutboxMail
from tests.conftest import _service_environ
from tests.support.processes import ROOT, http, poll_until, start_gunicorn, stop
from tests.support.services import private_redis

PASSWORD = "Quartz-Meadow-Lantern-5821"
# The worker unseals the verification mail with the web's SECRET_KEY.
SECRET = "tls-test-secret-" + "k" * 32


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[str]:
    with private_redis(tls=True) as url:
        yield url


def _env(url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in _service_environ().items() if not k.startswith("PROMETHEUS_")}
    env.update(TEST_REDIS_URL=url, MAIL_URL="console", SECRET_KEY=SECRET, WEB_CONCURRENCY="1", **settings)
    return env


def _post(base: str, path: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
    status, raw = http(
        "POST", base + path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    return status, json.loads(raw)


def test_a_self_signed_redis_serves_everything_once_told_not_to_verify_it(
    app: Flask, tls_redis: str, tmp_path: Path
) -> None:
    env = _env(tls_redis, REDIS_TLS_VERIFY="false")
    proc, base = start_gunicorn(env, tmp_path / "web.log")  # returns once /health/ready is 200
    try:
        status, ready = http("GET", base + "/health/ready")
        assert status == 200 and json.loads(ready)["checks"]["redis"]["status"] == "ok"
        # The credential endpoints count attempts in Redis and fail closed without it (503).
        status, body = _post(base, "/api/v1/auth/login", {"email": "nobody@example.com", "password": "wrong-pass-1"})
        assert status == 401, body
        status, body = _post(
            base,
            "/api/v1/auth/register",
            {"email": "tls-user@example.com", "password": PASSWORD, "full_name": "TLS User"},
        )
        assert status == 201, body
    finally:
        stop(proc)

    connection = redis.Redis.from_url(tls_redis, ssl_cert_reqs="none")
    mail = Queue("mail", connection=connection)
    assert mail.count >= 1  # the verification mail's job is in the TLS Redis

    # The worker, configured the same way, takes the job from there and runs it.
    worker = subprocess.run(
        [sys.executable, "worker.py", "--burst", "--queues", "mail"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    assert mail.count == 0
    assert FailedJobRegistry("mail", connection=connection).count == 0
    with app.app_context():
        sent = db.session.scalar(sa.select(OutboxMail.sent_at).where(OutboxMail.to_address == "tls-user@example.com"))
        db.session.remove()
    assert sent is not None, worker.stdout[-3000:]


def test_by_default_a_certificate_nobody_vouches_for_is_refused(app: Flask, tls_redis: str, tmp_path: Path) -> None:
    proc, base = start_gunicorn(_env(tls_redis), tmp_path / "web.log", ready_path="/health/live")
    try:
        status, ready = http("GET", base + "/health/ready")
        assert status == 503 and json.loads(ready)["checks"]["redis"]["status"] == "fail"
        status, body = _post(base, "/api/v1/auth/login", {"email": "nobody@example.com", "password": "wrong-pass-1"})
        assert status == 503, body  # fails closed: no attempt goes uncounted
    finally:
        stop(proc)
    log = (tmp_path / "web.log").read_text()
    assert "CERTIFICATE_VERIFY_FAILED" in log
    # The worker waits for a Redis it can use, and says what to set.
    worker_log = tmp_path / "worker.log"
    with worker_log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=_env(tls_redis), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        poll_until(lambda: "set REDIS_TLS_VERIFY=false" in worker_log.read_text(), timeout=30, what="the hint")
    finally:
        worker.kill()
        worker.wait(timeout=30)
