"""Conventions every endpoint shares: envelopes, request ids, 201/204, money as strings."""

from __future__ import annotations

import json
import logging
import os

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of

WIDGETS = "/api/v1/_test/widgets"


def test_create_is_201_with_location_and_envelope(client: FlaskClient) -> None:
    response = client.post(WIDGETS, json={"name": "Gizmo", "price": "19.99"})
    assert response.status_code == 201
    body = json_of(response)
    assert set(body) == {"data"}
    widget = body["data"]
    assert response.headers["Location"] == f"/api/v1/_test/widgets/{widget['id']}"
    assert widget["price"] == "19.99"
    assert widget["created_at"].endswith("Z")
    assert widget["id"][14] == "7", "ids are UUIDv7"


def test_get_one_is_enveloped(client: FlaskClient) -> None:
    created = json_of(client.post(WIDGETS, json={"name": "Gizmo", "price": "5"}))["data"]
    body = json_of(client.get(f"{WIDGETS}/{created['id']}"))
    assert body == {"data": created}
    assert body["data"]["price"] == "5.00"


def test_delete_is_204_without_body(client: FlaskClient) -> None:
    created = json_of(client.post(WIDGETS, json={"name": "Gizmo", "price": "5"}))["data"]
    response = client.delete(f"{WIDGETS}/{created['id']}")
    assert response.status_code == 204
    assert response.get_data() == b""


def test_sane_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": "abc-123.x"})
    assert response.headers["X-Request-ID"] == "abc-123.x"


def test_insane_request_id_is_replaced(client: FlaskClient) -> None:
    for bad in ("x" * 500, "evil\u2028value", "a b", ""):
        response = client.get("/health/live", headers={"X-Request-ID": bad})
        generated = response.headers["X-Request-ID"]
        assert generated != bad and len(generated) == 32


def test_one_json_access_log_line_per_request(client: FlaskClient, caplog) -> None:
    caplog.set_level(logging.INFO, logger="storefront.access")
    client.get(f"{WIDGETS}?per_page=5", headers={"X-Request-ID": "req-42"})
    lines = [r for r in caplog.records if r.name == "storefront.access"]
    assert len(lines) == 1
    record = lines[0]
    assert record.request_id == "req-42"
    assert record.method == "GET" and record.path == WIDGETS and record.status == 200
    assert record.duration_ms >= 0


def test_access_log_line_names_the_authenticated_user(app, client: FlaskClient, caplog) -> None:
    from tests.factories import create_user

    user = create_user(app)
    caplog.set_level(logging.INFO, logger="storefront.access")
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    record = next(r for r in caplog.records if r.name == "storefront.access")
    assert record.user_id == user.id


PROXY_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from flask import request
from tests.conftest import build_app
out = {}
app = build_app(PROXY_FIX_X_FOR=sys.argv[2])
app.add_url_rule("/_ip", "ip", lambda: {"ip": request.remote_addr})
client = app.test_client()
r = client.get(
    "/_ip", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}, environ_base={"REMOTE_ADDR": "10.0.0.2"}
)
print("RESULT" + json.dumps(r.get_json()))
"""


def test_forwarded_for_is_trusted_for_the_configured_hops_only(tmp_path) -> None:
    from tests.support.processes import run_probe

    env = {**os.environ, "TEST_DATABASE_URL": f"sqlite:///{tmp_path / 'proxy.db'}"}
    env.pop("TEST_REDIS_URL", None)
    seen = {hops: run_probe(PROXY_PROBE, hops, env=env)["ip"] for hops in ("0", "1", "2")}
    # 0: the socket peer; 1: the address our one proxy saw; 2: the one before it.
    assert seen == {"0": "10.0.0.2", "1": "198.51.100.7", "2": "203.0.113.9"}


def test_json_formatter_renders_one_line(client: FlaskClient, caplog) -> None:
    from app.observability import ContextFilter, JSONFormatter

    caplog.set_level(logging.INFO, logger="storefront.access")
    client.get("/health/live", headers={"X-Request-ID": "req-43"})
    record = next(r for r in caplog.records if r.name == "storefront.access")
    ContextFilter().filter(record)
    line = JSONFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] == "req-43" and entry["status"] == 200 and entry["level"] == "INFO"


def test_the_app_remembers_which_functions_are_coroutines_and_answers_as_flask_does(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ensure_sync`` is asked about every hook and view of every request: the app keeps
    each function's answer, and still hands an ``async def`` view to ``async_to_sync``."""

    def plain() -> str:
        return "plain"

    async def coroutine() -> str:
        return "coroutine"

    class View:
        def get(self) -> str:
            return "method"

    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(plain) is plain
    bound = View().get
    assert app.ensure_sync(bound) is bound
    assert app.ensure_sync(View().get)() == "method"  # a new bound method, the same answer
    handed: list[object] = []

    def async_to_sync(func: object) -> object:
        handed.append(func)
        return func

    monkeypatch.setattr(app, "async_to_sync", async_to_sync)
    app.ensure_sync(coroutine)
    app.ensure_sync(coroutine)
    assert handed == [coroutine, coroutine]
    # Each plain function is asked about once, whatever the number of requests.
    with app.test_client() as client:
        before = len(app._coroutine_functions)  # type: ignore[attr-defined]
        for _ in range(3):
            client.get("/health/live")
        after_first = len(app._coroutine_functions)  # type: ignore[attr-defined]
        client.get("/health/live")
        assert len(app._coroutine_functions) == after_first >= before  # type: ignore[attr-defined]


def test_gunicorns_own_log_lines_still_format_once_the_app_is_loaded(app: Flask) -> None:
    """gunicorn prints its lines (a worker's "Worker exiting", say) with the pid of the
    record: the app's logging settings must leave it there (it once did not, and every
    such line became a "--- Logging error ---" traceback)."""
    from gunicorn.glogging import Logger as GunicornLogger

    record = logging.getLogger("gunicorn.error").makeRecord(
        "gunicorn.error", logging.INFO, __file__, 1, "Worker exiting (pid: %s)", (1234,), None
    )
    line = logging.Formatter(GunicornLogger.error_fmt, GunicornLogger.datefmt).format(record)
    assert line.endswith(f"[{os.getpid()}] [INFO] Worker exiting (pid: 1234)")
