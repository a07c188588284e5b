"""/api/v1/docs in a real headless Chromium: rendered from the app's own assets, under its CSP.

Chromium comes from Debian's packages (``apt-get install chromium``; .ci/run installs it),
driven by Playwright with ``executable_path``: no browser is ever downloaded. Where no
browser is installed the test is skipped with a message, except in CI and in the services
run, where it fails.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from tests.conftest import SERVICES

CHROMIUM_ARGS = [
    "--no-sandbox",  # the suite may run as root (CI containers)
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Collects what the page's Content-Security-Policy refused (init scripts are not subject to it).
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "Chromium is not installed: apt-get install chromium chromium-driver (.ci/run does)"
    if os.environ.get("CI") or SERVICES:
        pytest.fail(message + " — required in CI and in the services run")
    pytest.skip(message)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_docs_render_offline_under_their_csp(live_server: str) -> None:
    executable = chromium_path()
    from playwright.sync_api import Route, sync_playwright

    origin = urlsplit(live_server).netloc
    requested: list[str] = []
    left_the_host: list[str] = []
    console_errors: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).scheme in {"data", "blob"} or urlsplit(url).netloc == origin:
            route.continue_()
        else:
            left_the_host.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.add_init_script(CSP_PROBE)
            page.route("**/*", guard)
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            response = page.goto(f"{live_server}/api/v1/docs")
            assert response is not None and response.status == 200

            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/api/v1/auth/login" in paths and "/api/v1/orders" in paths
            # Open one operation: its parameters and response schemas render too.
            page.locator(".opblock-summary", has_text="/api/v1/auth/login").first.click()
            page.wait_for_selector(".opblock-body .responses-wrapper", timeout=10_000)
            violations = page.evaluate("window.__cspViolations")
        finally:
            browser.close()

    assert left_the_host == []
    assert any(url.endswith("/api/v1/openapi.json") for url in requested)
    assert any("/api/v1/docs/assets/swagger-ui-bundle.js" in url for url in requested)
    assert violations == []
    assert console_errors == []


def test_docs_page_headers_and_trailing_slash(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "https://" not in html

    redirect = client.get("/api/v1/docs/")
    assert redirect.status_code == 308
    assert redirect.headers["Location"] == "/api/v1/docs"

    bundle = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.data) > 100_000
    assert client.get("/api/v1/docs/assets/..%2Fconfig.py").status_code == 404
    assert client.get("/api/v1/docs/assets/index.html").status_code == 404
