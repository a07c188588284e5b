"""Conventions every endpoint shares: envelopes, request ids, 201/204, money as strings."""

from __future__ import annotations

import json
import logging

from flask.testing import FlaskClient

from tests.conftest import json_of

WIDGETS = "/api/v1/_test/widgets"


def test_create_is_201_with_location_and_envelope(client: FlaskClient) -> None:
    response = client.post(WIDGETS, json={"name": "Gizmo", "price": 19.99})
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
