"""The pages mail links land on: verify and reset end to end, with the token from the mail."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from limits import parse_many
from werkzeug.test import TestResponse

from tests.conftest import json_of
from tests.factories import bearer, create_user
from tests.support.mailbox import Mailbox

PASSWORD = "Orchard-Lantern-93"
NEW_PASSWORD = "Marble-Kestrel-Violin-57"
LINK = re.compile(r"https?://[^\s\"<>]+/account/(?:verify-email|reset-password)\?token=[A-Za-z0-9_\-]+")


def link_in_latest_mail(mailbox: Mailbox, to: str) -> str:
    mails = mailbox.to(to)
    assert mails, f"no mail to {to}"
    text_links = LINK.findall(Mailbox.text_of(mails[-1]))
    html_part = mails[-1].get_body(preferencelist=("html",))
    assert html_part is not None
    html_links = LINK.findall(str(html_part.get_content()))
    assert text_links and text_links == html_links, (text_links, html_links)
    return str(text_links[0])


def hidden_token(page: TestResponse) -> str:
    match = re.search(r'<input type="hidden" name="token" value="([^"]*)">', page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)
    return match.group(1)


def assert_page_headers(page: TestResponse) -> None:
    assert page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp and "script" not in csp
    style = re.search(r"<style>(.*?)</style>", page.get_data(as_text=True), re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp, "the page's only stylesheet is allowed by its hash"
    assert "<script" not in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"


def me(client: FlaskClient, email: str, password: str) -> dict[str, object]:
    login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    token = json_of(login)["data"]["access_token"]
    profile: dict[str, object] = json_of(client.get("/api/v1/users/me", headers=bearer(token)))["data"]
    return profile


def test_verify_email_page_end_to_end(client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]) -> None:
    email = "newcomer@example.com"
    registered = client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "full_name": "New Comer"}
    )
    assert registered.status_code == 201
    run_jobs()
    link = link_in_latest_mail(mailbox, email)
    # No PUBLIC_BASE_URL in the tests: the address the app is served at (the test client's).
    assert link.startswith("http://localhost/account/verify-email?token=")
    url = urlsplit(link)

    for _ in range(2):  # a link scanner, a mail preview: a GET spends nothing
        page = client.get(f"{url.path}?{url.query}")
        assert page.status_code == 200
        assert_page_headers(page)
        assert hidden_token(page) == url.query.removeprefix("token=")
    assert me(client, email, PASSWORD)["email_verified_at"] is None

    done = client.post(url.path, data={"token": hidden_token(page)})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "your email address is verified" in done.get_data(as_text=True)
    assert_page_headers(done)
    assert me(client, email, PASSWORD)["email_verified_at"] is not None

    again = client.post(url.path, data={"token": hidden_token(page)})
    assert again.status_code == 400
    assert "invalid, was already used, or has expired" in again.get_data(as_text=True)


def test_reset_password_page_end_to_end(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    user = create_user(app)
    ask = client.get("/account/reset-password")
    assert ask.status_code == 200 and 'name="email"' in ask.get_data(as_text=True)
    for junk in ("not-an-email", "nul\x00@example.com", ""):
        answer = client.post("/account/reset-password", data={"email": junk})
        assert answer.status_code == 200 and "If an account exists" in answer.get_data(as_text=True)
    sent = client.post("/account/reset-password", data={"email": user.email})
    assert sent.status_code == 200
    assert "If an account exists for this email" in sent.get_data(as_text=True)
    run_jobs()
    link = link_in_latest_mail(mailbox, user.email)
    url = urlsplit(link)
    assert url.path == "/account/reset-password"

    form = client.get(f"{url.path}?{url.query}")
    assert form.status_code == 200
    assert_page_headers(form)
    token = hidden_token(form)

    weak = client.post(url.path, data={"token": token, "password": "too-short"})
    assert weak.status_code == 400
    assert hidden_token(weak) == token, "a refused password keeps the form and the token"
    assert 'class="error"' in weak.get_data(as_text=True)

    done = client.post(url.path, data={"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "Your password is changed" in done.get_data(as_text=True)
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 401, "sessions ended"
    assert me(client, user.email, NEW_PASSWORD)["email"] == user.email
    old = client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
    assert old.status_code == 401

    reused = client.post(url.path, data={"token": token, "password": "Another-Fresh-Secret-61"})
    assert reused.status_code == 400
    assert "invalid, was already used, or has expired" in reused.get_data(as_text=True)


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("PUBLIC_BASE_URL", "https://api.shop.example", "https://api.shop.example/account/reset-password?token="),
        ("FRONTEND_URL", "https://shop.example", "https://shop.example/account/reset-password?token="),
    ],
)
def test_links_follow_the_configured_addresses(
    app: Flask,
    client: FlaskClient,
    mailbox: Mailbox,
    run_jobs: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setitem(app.config, setting, value)
    user = create_user(app)
    # A forged Host header changes nothing when the address is configured.
    sent = client.post("/api/v1/auth/password/forgot", json={"email": user.email}, headers={"Host": "evil.example"})
    assert sent.status_code == 202
    run_jobs()
    assert link_in_latest_mail(mailbox, user.email).startswith(expected)


def test_opening_links_uses_no_budget_and_a_refused_form_is_a_page(app: Flask, client: FlaskClient) -> None:
    """Showing a page spends no token and so counts against no limit (a mail scanner opening
    links would use up the reader's); sending the form does, and a browser that sent it
    too often gets a page saying so, not the API's JSON."""
    budget = int(str(app.config["RATELIMIT_AUTH_IP"]).split()[0])
    for _ in range(budget + 5):
        assert client.get("/account/verify-email?token=abc").status_code == 200
    statuses = [client.post("/account/verify-email", data={"token": "x" * 43}).status_code for _ in range(budget)]
    assert set(statuses) == {400}
    refused = client.post("/account/verify-email", data={"token": "x" * 43})
    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert refused.headers["Retry-After"]
    assert_page_headers(refused)


def test_the_reset_form_counts_per_email_in_either_form_encoding(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    """The per-email budget holds whichever encoding a browser (or a script) sends the form
    in: multipart, which the view reads as well, is counted like urlencoded. Mails sent:
    no more than the address may get."""
    user = create_user(app, role="customer")
    limit = min(item.amount for item in parse_many(app.config["RATELIMIT_AUTH_EMAIL"]))
    statuses = []
    for i in range(limit + 3):
        encoding = "multipart/form-data" if i % 2 else "application/x-www-form-urlencoded"
        response = client.post(
            "/account/reset-password",
            data={"email": user.email},
            content_type=encoding,
            environ_base={"REMOTE_ADDR": "203.0.113.1"},
        )
        statuses.append(response.status_code)
    assert statuses == [200] * limit + [429] * 3, statuses
    run_jobs()
    cap = min(item.amount for item in parse_many(app.config["RATELIMIT_RECOVERY_MAIL"]))
    assert len([m for m in mailbox.messages if user.email in str(m["To"])]) == cap
