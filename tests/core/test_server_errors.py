"""What gunicorn refuses itself gets the API's envelope: the Procfile's web process, raw bytes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.processes import http, start_gunicorn, stop


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("server-errors")
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{folder / 'errors.db'}",
        "REDIS_URL": "",
        "TEST_SERVICES": "",
        "WEB_CONCURRENCY": "1",
    }
    proc, url = start_gunicorn(env, folder / "gunicorn.log")
    yield url
    stop(proc)


def raw(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is; the status, headers and body of the answer."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /api/v1/products?q=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 400, "BAD_REQUEST"),
        (b"GET /api/v1/products?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI_TOO_LONG"),
        (b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "HEADERS_TOO_LARGE"),
        (b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, "BAD_REQUEST"),
    ],
    ids=["raw-bytes-in-query", "request-line-too-long", "header-too-large", "malformed-header"],
)
def test_a_request_gunicorn_refuses_gets_the_envelope(base: str, request_bytes: bytes, status: int, code: str) -> None:
    answered, headers, body = raw(base, request_bytes)
    assert answered == status, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == code and error["details"] == [] and error["request_id"] == headers["x-request-id"]
    assert "<" not in error["message"] and "\xff" not in error["message"]  # nothing of the request echoed
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    # The server goes on serving.
    assert http("GET", f"{base}/health/live")[0] == 200


def test_the_gunicorn_settings_serve_another_app_unchanged(tmp_path_factory: pytest.TempPathFactory) -> None:
    """gunicorn.conf.py installs the envelope for this app only: another app served with it
    (the bench's bare Flask ceiling) boots, and gunicorn answers its errors as usual."""
    env = {"APP_ENV": "development", "WEB_CONCURRENCY": "1"}
    log = tmp_path_factory.mktemp("peer") / "gunicorn.log"
    proc, base = start_gunicorn(env, log, target="bench.peers.hello:app", ready_path="/")
    try:
        status, headers, _ = raw(base, b"GET /?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 414 and headers["content-type"] == "text/html"
    finally:
        stop(proc)
