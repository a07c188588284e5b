"""API4:2023 Unrestricted Resource Consumption.

Every endpoint is rate limited per client; bodies are small; the cheapest check runs
first; nothing a request holds can make a rate-limit key function fail; and with the
counters' storage down, limits are never quietly per-process.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from app.auth.permissions import _account_key, _email_key
from app.ratelimits import client_key
from app.users.schemas import EmailAddress
from tests.conftest import json_of
from tests.factories import bearer, create_user
from tests.security.support import LOGIN, admin_sign_in, run_probe

PRODUCTS = "/api/v1/products"


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert json_of(response)["error"]["code"] == "RATE_LIMITED"
    assert response.headers["Retry-After"].isdigit()
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert name in response.headers


def test_every_endpoint_has_a_default_limit_per_client(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "RATELIMIT_DEFAULT", "3 per minute")
    alice, bob = create_user(app), create_user(app)
    for _ in range(3):
        ok = client.get(PRODUCTS, environ_base={"REMOTE_ADDR": "203.0.113.1"})
        assert ok.status_code == 200 and ok.headers["X-RateLimit-Limit"] == "3"
    assert_rate_limited(client.get(PRODUCTS, environ_base={"REMOTE_ADDR": "203.0.113.1"}))
    assert client.get(PRODUCTS, environ_base={"REMOTE_ADDR": "203.0.113.2"}).status_code == 200

    # With a valid access token the user is the client, whatever the address.
    for n in range(3):
        assert (
            client.get(
                "/api/v1/users/me", headers=alice.headers, environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}
            ).status_code
            == 200
        )
    assert_rate_limited(client.get("/api/v1/users/me", headers=alice.headers, environ_base={"REMOTE_ADDR": "10.0.0.9"}))
    assert (
        client.get("/api/v1/users/me", headers=bob.headers, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 200
    )


def test_order_placement_has_its_own_limit_per_customer(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "RATELIMIT_ORDERS", "2 per minute")
    alice, bob = create_user(app), create_user(app)
    invalid = {"items": [], "shipping_address": {}}  # refused, but every attempt counts
    for _ in range(2):
        assert client.post("/api/v1/orders", json=invalid, headers=alice.headers).status_code == 422
    assert_rate_limited(client.post("/api/v1/orders", json=invalid, headers=alice.headers))
    assert client.post("/api/v1/orders", json=invalid, headers=bob.headers).status_code == 422
    assert client.get("/api/v1/orders", headers=alice.headers).status_code == 200  # reading is not placing


def test_deeply_nested_json_cannot_break_the_rate_limit_key(app: Flask, client: FlaskClient, caplog: Any) -> None:
    """A key function that raised made flask-limiter swap in fresh per-process counters
    (each worker then allowed the limit again) and log a traceback per request."""
    body = '{"email": ' + "[" * 5000 + "]" * 5000 + ', "password": "x"}'
    caplog.set_level(logging.INFO)
    response = client.post(LOGIN, data=body, content_type="application/json")
    assert response.status_code == 400
    assert json_of(response)["error"]["code"] == "BAD_REQUEST"
    assert "X-RateLimit-Remaining" in response.headers  # counted, against the IP
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_key_functions_never_raise(app: Flask) -> None:
    deep = "[" * 5000 + "]" * 5000
    cases: list[dict[str, Any]] = [
        {"data": deep, "content_type": "application/json"},
        {"data": b"\xff\xfe{", "content_type": "application/json"},
        {"data": "email=%ff%fe&password=x", "content_type": "application/x-www-form-urlencoded"},
        {"headers": bearer("a.b.c")},
        {"headers": {"Authorization": "Bearer " + "x" * 10000}},
        {"environ_base": {"REMOTE_ADDR": "<script>"}},
        {"environ_base": {"REMOTE_ADDR": ""}},
    ]
    for case in cases:
        environ = EnvironBuilder("/api/v1/auth/login", method="POST", **case).get_environ()
        with app.request_context(environ):
            for key in (client_key, _email_key, _account_key):
                value = key()
                assert isinstance(value, str) and value, (case, key)
                assert "<script>" not in value


def test_the_email_length_is_checked_before_any_pattern(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 15 MB email once cost 4.7 s of CPU in the address regex before its 422."""
    calls: list[int] = []

    class Spy:
        def __init__(self, pattern: Any) -> None:
            self.pattern = pattern

        def fullmatch(self, text: str) -> Any:
            calls.append(len(text))
            return self.pattern.fullmatch(text)

    monkeypatch.setattr(EmailAddress, "_VALID", Spy(EmailAddress._VALID))
    response = client.post(LOGIN, json={"email": "a" * 60_000 + "@example.com", "password": "x"})
    assert response.status_code == 422
    assert json_of(response)["error"]["details"] == [
        {"field": "email", "message": "Must be at most 254 characters long."}
    ]
    assert calls == []
    assert client.post(LOGIN, json={"email": "a@example.com", "password": "x"}).status_code == 401
    assert calls and max(calls) <= 254


def test_json_bodies_are_capped(app: Flask, client: FlaskClient) -> None:
    over = app.config["MAX_JSON_BYTES"] + 1
    big = {"email": "a@example.com", "password": "x" * over}
    response = client.post(LOGIN, json=big)
    assert response.status_code == 413
    assert json_of(response)["error"]["code"] == "PAYLOAD_TOO_LARGE"
    staff = create_user(app, role="staff")
    product = {"sku": "BIG-1", "name": "Big", "price": "1.00", "stock": 1, "description": "x" * over}
    assert client.post(PRODUCTS, json=product, headers=staff.headers).status_code == 413


def test_a_chunked_body_is_capped_too(client: FlaskClient) -> None:
    body = b'{"email": "a@example.com", "password": "' + b"x" * (200 * 1024) + b'"}'
    environ = EnvironBuilder(LOGIN, method="POST", data=body, content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    response = client.open(Request(environ))
    assert response.status_code == 413


def test_an_upload_view_takes_a_larger_body_under_its_own_limit(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``allows_large_body`` and ``uploads_limit()`` are what the uploads views use."""
    monkeypatch.setitem(app.config, "RATELIMIT_UPLOADS", "2 per minute")
    content = "x" * (app.config["MAX_JSON_BYTES"] * 2)
    for _ in range(2):
        response = client.post("/api/v1/_test/blobs", json={"content": content})
        assert response.status_code == 200
        assert len(json_of(response)["data"]["content"]) == len(content)
    assert_rate_limited(client.post("/api/v1/_test/blobs", json={"content": "x"}))


STORAGE_DOWN_PROBE = """
import json, sys, logging
sys.path.insert(0, sys.argv[1])
from tests.conftest import build_app
from tests.factories import create_user
from app.db import db
app = build_app(TEST_REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens: limits, queues, blocklist
with app.app_context():
    db.create_all()
user = create_user(app)
client = app.test_client()
out = {}
login = client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
out["login"] = [login.status_code, login.get_json(), dict(login.headers)]
register = client.post("/api/v1/auth/register", json={"email": "n@example.com", "password": "x", "full_name": "N"})
out["register"] = register.status_code
# A refresh token that verifies is exempt from the per-IP limit; its per-account one fails closed.
refresh = client.post("/api/v1/auth/refresh", headers={"Authorization": "Bearer " + user.refresh_token})
out["refresh"] = [refresh.status_code, refresh.get_json()]
products = client.get("/api/v1/products")
out["products"] = [products.status_code, dict(products.headers)]
page = client.post("/account/reset-password", data={"email": user.email})
out["page"] = [page.status_code, page.mimetype, page.headers.get("Retry-After")]
signin = client.post("/admin/login", data={"email": user.email, "password": user.password})
out["signin"] = [signin.status_code, signin.mimetype, signin.headers.get("Retry-After")]
me = client.get("/api/v1/users/me", headers={"Authorization": "Bearer " + user.access_token})
out["me"] = me.status_code
out["metrics"] = client.get("/metrics").get_data(as_text=True)
print("RESULT" + json.dumps(out))
"""


def test_with_the_limit_storage_down_auth_fails_closed_and_the_rest_serves(app: Flask) -> None:
    """Never silently per-process: credential endpoints answer 503, other endpoints serve
    without limits; both are logged and counted in /metrics."""
    out = run_probe(STORAGE_DOWN_PROBE)
    status, body, headers = out["login"]
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert headers["Retry-After"].isdigit()
    assert out["register"] == 503
    status, body = out["refresh"]
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"
    status, headers = out["products"]
    assert status == 200 and "X-RateLimit-Limit" not in headers
    assert out["me"] == 200
    # The pages browsers use say so in a page (the API's JSON before).
    for status, mimetype, retry_after in (out["page"], out["signin"]):
        assert (status, mimetype) == (503, "text/html") and retry_after.isdigit()
    assert 'ratelimit_storage_errors_total{outcome="refused"} 5.0' in out["metrics"]
    assert 'ratelimit_storage_errors_total{outcome="served_unlimited"}' in out["metrics"]
    assert "rate-limit storage unreachable" in out["_stdout"]


def test_an_emails_budget_is_shared_by_every_endpoint_that_takes_it(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sign-ins (API and dashboard), reset requests (API and page) and registrations count
    toward one budget per email and client: sending to several endpoints gets no client
    more password guesses at an address, nor more mail."""
    monkeypatch.setitem(app.config, "RATELIMIT_AUTH_EMAIL", "4 per minute")
    user, other = create_user(app), create_user(app)
    wrong = {"email": user.email, "password": "Wrong-Password-99"}
    assert client.post(LOGIN, json=wrong).status_code == 401
    assert admin_sign_in(client, user.email.upper(), "Wrong-Password-99").status_code == 401
    assert client.post("/api/v1/auth/password/forgot", json={"email": user.email}).status_code == 202
    page = client.post("/account/reset-password", data={"email": f" {user.email} "})
    assert page.status_code == 200 and page.headers["X-RateLimit-Remaining"] == "0"
    for refused in (
        client.post(LOGIN, json=wrong),
        client.post("/api/v1/auth/password/forgot", json={"email": user.email}),
        client.post("/api/v1/auth/register", json={"email": user.email, "password": "x", "full_name": "X"}),
        admin_sign_in(client, user.email, "Wrong-Password-99"),
        client.post("/account/reset-password", data={"email": user.email}),
    ):
        assert refused.status_code == 429
    assert client.post(LOGIN, json={**wrong, "email": other.email}).status_code == 401
    assert client.get("/account/reset-password").status_code == 200  # showing the form counts nothing


def test_the_headers_tell_of_the_limit_nearest_to_refusing(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several limits apply to a reset request (per IP, per email): a client that follows
    ``X-RateLimit-*`` is never refused while they say it has requests left."""
    monkeypatch.setitem(app.config, "RATELIMIT_AUTH_IP", "3 per minute")
    monkeypatch.setitem(app.config, "RATELIMIT_AUTH_EMAIL", "10 per minute")
    for n, remaining in enumerate(("2", "1", "0")):
        response = client.post("/api/v1/auth/password/forgot", json={"email": f"someone{n}@example.com"})
        assert response.status_code == 202
        assert (response.headers["X-RateLimit-Limit"], response.headers["X-RateLimit-Remaining"]) == ("3", remaining)
    refused = client.post("/api/v1/auth/password/forgot", json={"email": "someone9@example.com"})
    assert_rate_limited(refused)
    assert refused.headers["X-RateLimit-Limit"] == "3"
    # Where the email's budget is the nearer one, the headers tell of it.
    monkeypatch.setitem(app.config, "RATELIMIT_AUTH_IP", "20 per minute")
    monkeypatch.setitem(app.config, "RATELIMIT_AUTH_EMAIL", "2 per minute")
    ip = {"REMOTE_ADDR": "198.51.100.7"}
    first = client.post("/api/v1/auth/password/forgot", json={"email": "mine@example.com"}, environ_base=ip)
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("2", "1")
