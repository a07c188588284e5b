"""Liveness, readiness (with a dependency down) and metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Worker

from app.extensions import QUEUE_NAMES, redis_queues
from tests.conftest import SERVICES, _service_environ, json_of
from tests.support.processes import run_probe
from tests.support.services import redis_at, unreachable_redis

ROOT = Path(__file__).resolve().parents[2]


def test_live(client: FlaskClient) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert json_of(response) == {"status": "ok"}


def test_ready_checks_database_and_redis(client: FlaskClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = json_of(response)
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["latency_ms"] >= 0
    if SERVICES:
        assert body["checks"]["redis"]["status"] == "ok"
        assert body["checks"]["redis"]["latency_ms"] >= 0
    else:
        # No REDIS_URL: the in-process stand-in is not reported as a healthy Redis.
        assert body["checks"]["redis"] == {"status": "not configured (in-process)"}


REDIS_DOWN_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.conftest import build_app
from app.db import db
app = build_app(TEST_REDIS_URL="redis://127.0.0.1:1/0")
with app.app_context():
    db.create_all()
    from tests.support import widgets
    widgets.TestBase.metadata.create_all(db.engine)
client = app.test_client()
out = {}
for path in ("/health/ready", "/health/live", "/api/v1/_test/widgets", "/api/v1/openapi.json"):
    r = client.get(path)
    out[path] = [r.status_code, r.get_json()]
print("RESULT" + json.dumps(out))
"""


def test_redis_down_ready_is_503_and_reads_still_served(tmp_path) -> None:
    # A separate process: flask-smorest and flask-limiter bind one app per extension object.
    env = _service_environ()
    if not SERVICES:
        env["TEST_DATABASE_URL"] = f"sqlite:///{tmp_path / 'down.db'}"
    out = run_probe(REDIS_DOWN_PROBE, env=env)
    status, body = out["/health/ready"]
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "ok"
    assert out["/health/live"][0] == 200
    assert out["/api/v1/_test/widgets"][0] == 200
    assert out["/api/v1/openapi.json"][0] == 200


def test_metrics_exposes_requests_and_queue_depth(client: FlaskClient) -> None:
    client.get("/health/live")
    client.get("/api/v1/nope")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    text = response.get_data(as_text=True)
    assert 'http_requests_total{endpoint="/health/live",method="GET",status="200"}' in text
    assert 'endpoint="<unmatched>",method="GET",status="404"' in text
    assert 'http_request_duration_seconds_bucket{endpoint="/health/live",le="0.005",method="GET",status="200"}' in text
    for queue in ("mail", "imports"):
        assert f'rq_queue_depth{{queue="{queue}"}}' in text
        assert f'rq_failed_jobs{{queue="{queue}"}} 0.0' in text


OTHER_405 = 'http_requests_total{endpoint="<unmatched>",method="OTHER",status="405"} '


def _other_405(client: FlaskClient) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    assert "BREW" not in text and "PROPFIND" not in text
    line = next((line for line in text.splitlines() if line.startswith(OTHER_405)), None)
    return float(line.removeprefix(OTHER_405)) if line else 0.0


def test_metrics_series_stay_bounded_whatever_method_a_client_sends(client: FlaskClient) -> None:
    before = _other_405(client)
    for method in ("BREW", "PROPFIND", "X" * 40):
        assert client.open("/health/live", method=method).status_code == 405
    assert _other_405(client) == before + 3


SILENT_DATABASE_PROBE = """
import json, socket, sys, time
sys.path.insert(0, sys.argv[1])
with socket.socket() as silent:
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    from app import create_app
    from config import DevelopmentConfig
    config = DevelopmentConfig(
        {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/shop", "DATABASE_CONNECT_TIMEOUT": "2"}
    )
    client = create_app(config).test_client()
    started = time.monotonic()
    out = {path: client.get(path) for path in ("/health/ready", "/api/v1/products")}
    out = {path: [r.status_code, r.get_json()] for path, r in out.items()}
    out["seconds"] = time.monotonic() - started
print("RESULT" + json.dumps(out))
"""


def test_a_database_that_never_answers_is_a_503_within_the_connect_timeout() -> None:
    # A listening socket nobody accepts from: the kernel completes the connection, and the
    # database's greeting never comes (a hung server, a black-holing proxy). libpq's own
    # default would hold each request thread for over two minutes.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DATABASE_", "REDIS_"))}
    out = run_probe(SILENT_DATABASE_PROBE, env=env)
    assert out["/health/ready"][0] == 503, out
    status, body = out["/api/v1/products"]
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert out["seconds"] < 30


METRICS_TOKEN = "m" * 40


def _scrape(app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """/metrics as an operator's Prometheus reads it (with its token): series → value."""
    monkeypatch.setitem(app.config, "METRICS_TOKEN", METRICS_TOKEN)
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    samples = {}
    for line in response.get_data(as_text=True).splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def test_metrics_say_whether_redis_answers_and_how_many_workers_serve_each_queue(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = _scrape(app, client, monkeypatch)
    assert up["redis_up"] == 1.0
    for queue in QUEUE_NAMES:
        assert up[f'rq_workers{{queue="{queue}"}}'] == 0.0
        assert up[f'rq_failed_jobs{{queue="{queue}"}}'] == 0.0
    if SERVICES:
        # A worker of housekeeping and mail registers in Redis as RQ's workers do: it counts
        # for those queues only, and stops counting once its key expires (a killed worker).
        with app.app_context():
            queues = [redis_queues.queue("housekeeping"), redis_queues.queue("mail")]
            worker = Worker(queues, connection=redis_queues.connection, name=f"metrics-{os.getpid()}")
            worker.register_birth()
        try:
            serving = _scrape(app, client, monkeypatch)
            assert serving['rq_workers{queue="housekeeping"}'] == serving['rq_workers{queue="mail"}'] == 1.0
            assert serving['rq_workers{queue="imports"}'] == serving['rq_workers{queue="media"}'] == 0.0
            with app.app_context():
                redis_queues.connection.delete(worker.key)  # its TTL ran out
            assert _scrape(app, client, monkeypatch)['rq_workers{queue="mail"}'] == 0.0
        finally:
            with app.app_context():
                worker.register_death()

    # Redis stops answering: /metrics still answers, says so, and leaves out what it cannot read.
    with redis_at(app, unreachable_redis()):
        down = _scrape(app, client, monkeypatch)
    assert down["redis_up"] == 0.0
    assert not [series for series in down if series.startswith("rq_")]
    assert 'http_requests_total{endpoint="/metrics",method="GET",status="200"}' in down
