"""API8:2023 Security Misconfiguration.

Security headers on every response, private answers never cached, absolute URLs from
PUBLIC_BASE_URL only, no trusted proxy unless configured, production refuses weak
secrets, /metrics behind a token, and a dashboard that cannot be driven cross-site.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import config
from config import Config, ConfigError, DevelopmentConfig, ProductionConfig
from tests.conftest import json_of
from tests.factories import bearer, create_user
from tests.security.support import LOGIN, admin_sign_in, csrf_token, run_probe

PRODUCTION = {
    "APP_ENV": "production",
    "PUBLIC_BASE_URL": "https://shop.example",
    "STORAGE_URL": "s3://shop-uploads/media",
    "SECRET_KEY": "s" * 40,
    "JWT_SECRET_KEY": "j" * 40,
    "DATABASE_URL": "postgres://u:p@db.example:5432/shop",
    "REDIS_URL": "redis://cache.example:6379/0",
    "MAIL_URL": "smtp://mailer@smtp.example:587",
}
DEFAULT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def assert_security_headers(response: Any) -> None:
    for name, value in DEFAULT_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.path, name, response.headers)


def test_security_headers_on_every_response_errors_included(app: Flask, client: FlaskClient) -> None:
    assert_security_headers(client.get("/api/v1/products"))
    assert_security_headers(client.get("/api/v1/no-such-thing"))  # 404
    assert_security_headers(client.put("/api/v1/_test/widgets", json={}))  # 405
    assert_security_headers(client.get("/api/v1/_test/boom"))  # 500
    assert_security_headers(client.post(LOGIN, data="x" * 70_000, content_type="application/json"))  # 413
    assert_security_headers(client.get("/health/live"))
    assert "Strict-Transport-Security" not in client.get("/health/live").headers  # not over plain http


def test_hsts_when_configured_and_on_by_default_in_production(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ProductionConfig(PRODUCTION).HSTS_SECONDS >= 365 * 24 * 3600
    monkeypatch.setitem(app.config, "HSTS_SECONDS", 31536000)
    assert client.get("/api/v1/products").headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_tokens_and_personal_data_are_never_cached(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    responses = {
        "login": client.post(LOGIN, json={"email": user.email, "password": user.password}),
        "refresh": client.post("/api/v1/auth/refresh", headers=bearer(user.refresh_token)),
        "me": client.get("/api/v1/users/me", headers=user.headers),
        "orders": client.get("/api/v1/orders", headers=user.headers),
        "sessions": client.get("/api/v1/auth/sessions", headers=user.headers),
        "refused": client.get("/api/v1/users/me"),
    }
    for name, response in responses.items():
        assert response.headers.get("Cache-Control") == "no-store", name
    assert "no-store" not in client.get("/api/v1/products").headers.get("Cache-Control", "")  # public catalog


def test_a_view_keeps_its_own_content_security_policy(client: FlaskClient) -> None:
    page = client.get("/admin/login")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert csp != DEFAULT_HEADERS["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


def test_links_and_redirects_never_come_from_the_host_header(app: Flask, client: FlaskClient) -> None:
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    for n in range(3):
        client.post("/api/v1/_test/widgets", json={"name": f"w{n}", "price": "1.00"})
    listed = client.get("/api/v1/_test/widgets?per_page=1", headers=evil)
    # PUBLIC_BASE_URL is unset in the tests: the address served (the test client's), never the Host header.
    assert listed.headers["Link"].startswith("<http://localhost/api/v1/_test/widgets?")
    assert "evil" not in listed.headers["Link"]
    redirect = client.get("/api/v1/_test/folder", headers=evil)  # Werkzeug's trailing-slash redirect
    assert redirect.status_code == 308
    assert redirect.headers["Location"] == "http://localhost/api/v1/_test/folder/"


PROXY_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from flask import request
from tests.conftest import build_app
app = build_app(PROXY_FIX_X_FOR="1")
app.add_url_rule("/_where", "where", lambda: {"host": request.host, "ip": request.remote_addr})
r = app.test_client().get("/_where", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-For": "203.0.113.7"})
print("RESULT" + json.dumps(r.get_json()))
"""


def test_a_trusted_proxy_sets_the_address_never_the_host() -> None:
    out = run_probe(PROXY_PROBE)
    assert out["ip"] == "203.0.113.7" and out["host"] != "evil.example"


def test_no_proxy_is_trusted_unless_configured() -> None:
    for config_class in (Config, DevelopmentConfig, config.TestingConfig):
        assert config_class({}).PROXY_FIX_X_FOR == 0
    assert ProductionConfig(PRODUCTION).PROXY_FIX_X_FOR == 0
    assert ProductionConfig({**PRODUCTION, "PROXY_FIX_X_FOR": "1"}).PROXY_FIX_X_FOR == 1


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY", "METRICS_TOKEN"])
def test_production_refuses_short_secrets(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be at least 32 characters"):
        ProductionConfig({**PRODUCTION, name: "a"})
    ProductionConfig({**PRODUCTION, name: "k" * 32})


def test_production_refuses_per_process_rate_limits_and_sets_secure_cookies() -> None:
    with pytest.raises(ConfigError, match="RATELIMIT_STORAGE_URI"):
        ProductionConfig({**PRODUCTION, "RATELIMIT_STORAGE_URI": "memory://"})
    production = ProductionConfig(PRODUCTION)
    assert production.SESSION_COOKIE_SECURE and production.SESSION_COOKIE_HTTPONLY
    assert production.SESSION_COOKIE_SAMESITE == "Strict" and production.SESSION_COOKIE_PATH == "/admin"
    assert not production.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED


def test_metrics_need_the_token_in_production(app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/metrics").status_code == 200  # development and tests: open
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    assert client.get("/metrics").status_code == 404  # no token configured: no metrics
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "m" * 40)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer("m" * 39 + "x")).status_code == 401
    create_user(app)
    assert client.get("/metrics", headers=create_user(app).headers).status_code == 401  # a user token is no key
    ok = client.get("/metrics", headers=bearer("m" * 40))
    assert ok.status_code == 200 and "http_requests_total" in ok.get_data(as_text=True)


def test_cors_is_closed_unless_configured(client: FlaskClient) -> None:
    response = client.get("/api/v1/products", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


CORS_PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from app import create_app
from config import TestingConfig
client = create_app(TestingConfig({**os.environ, "CORS_ORIGINS": sys.argv[2]})).test_client()
out = {}
for origin in ("https://shop.example", "https://evil.example", None):
    response = client.get("/api/v1/products", headers={"Origin": origin} if origin else {})
    out[str(origin)] = {
        "status": response.status_code,
        "allow": response.headers.get("Access-Control-Allow-Origin"),
        "vary": response.headers.getlist("Vary"),
        "cache": response.headers.get("Cache-Control"),
        "expose": response.headers.get("Access-Control-Expose-Headers"),
    }
out["document"] = client.get("/api/v1/openapi.json").get_json()
print("RESULT" + json.dumps(out))
"""


@pytest.mark.parametrize("origins", ["https://shop.example", "https://shop.example,https://admin.example"])
def test_a_cacheable_answer_varies_on_the_origin_when_cors_is_on(origins: str) -> None:
    """Allowed and refused origins get different CORS headers: a CDN keeping the public
    catalog must not hand one's answer to the other (flask-cors says so only for several
    origins)."""
    out = run_probe(CORS_PROBE, origins)
    assert out["https://shop.example"]["allow"] == "https://shop.example", out
    assert out["https://evil.example"]["allow"] is None
    for origin in ("https://shop.example", "https://evil.example", "None"):
        answer = out[origin]
        assert answer["status"] == 200 and answer["cache"].startswith("public")
        assert answer["vary"] == ["Authorization, Origin"], answer


# What a page's script needs no exposing for: the CORS-safelisted response headers, and
# those meant for the browser itself or for caches.
NOT_FOR_SCRIPTS = {
    "Cache-Control",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "Expires",
    "Last-Modified",
    "Pragma",
    "Content-Security-Policy",
    "Referrer-Policy",
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Vary",
}


def _declared_response_headers(document: dict[str, Any]) -> set[str]:
    responses = list(document["components"]["responses"].values())
    for operations in document["paths"].values():
        for method, operation in operations.items():
            if method != "parameters":
                responses.extend(r for r in operation["responses"].values() if "$ref" not in r)
    return {name for response in responses for name in response.get("headers", {})}


def test_a_browser_front_end_may_read_every_header_the_document_declares() -> None:
    """With CORS on, a header a script may not read is one the generated client cannot use
    (a download's Content-Disposition, a 201's Location, a 429's Retry-After...)."""
    out = run_probe(CORS_PROBE, "https://shop.example")
    exposed = {name.strip() for name in out["https://shop.example"]["expose"].split(",")}
    declared = _declared_response_headers(out["document"])
    assert {"Content-Disposition", "Location", "Retry-After", "ETag"} <= declared
    assert declared - NOT_FOR_SCRIPTS - exposed == set()


def test_errors_reveal_nothing_internal(client: FlaskClient) -> None:
    response = client.get("/api/v1/_test/boom")
    assert response.status_code == 500
    assert "SELECT" not in response.get_data(as_text=True)
    assert json_of(response)["error"]["message"] == "Internal server error"


@pytest.mark.services
def test_dashboard_actions_are_post_only_and_csrf_checked(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    assert admin_sign_in(client, admin.email, admin.password).status_code == 303
    token = csrf_token(client)
    empty = "/admin/rq/queue/mail/failed/empty"

    # A forged cross-site POST rides on the cookie but has no token: refused.
    assert client.post(empty).status_code == 403
    assert client.post(empty, headers={"X-CSRFToken": "guess"}).status_code == 403
    forged_site = client.post(empty, headers={"X-CSRFToken": token, "Sec-Fetch-Site": "cross-site"})
    assert forged_site.status_code == 403
    forged_origin = client.post(empty, headers={"X-CSRFToken": token, "Origin": "https://evil.example"})
    assert forged_origin.status_code == 403
    # A GET on an action route does nothing.
    requeue = client.get("/admin/rq/requeue/mail")
    assert requeue.status_code == 405 and requeue.headers["Allow"] == "POST"
    # What the dashboard's own page sends works.
    ok = client.post(empty, headers={"X-CSRFToken": token, "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200 and ok.get_json()["status"] == "OK"
    assert client.post("/admin/rq/requeue/mail", headers={"X-CSRFToken": token}).status_code == 200


@pytest.mark.services
def test_dashboard_pages_are_framed_by_nobody_and_run_only_our_scripts(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    admin_sign_in(client, admin.email, admin.password)
    page = client.get("/admin/rq/")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and page.headers["X-Frame-Options"] == "DENY"
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'nonce-" in script_src
    nonce = script_src.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    # The redirect to the trailing slash points at PUBLIC_BASE_URL, whatever the Host said.
    redirect = client.get("/admin/rq", headers={"Host": "evil.example"})
    assert redirect.headers["Location"].startswith("http://localhost/")  # PUBLIC_BASE_URL unset: the address served
