"""Forgot/reset password: no enumeration, single use, expiry, sessions revoked."""

from __future__ import annotations

import json
import logging
import smtplib
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from limits import parse_many

import config
from app.auth.models import AccountToken
from app.db import db, utcnow
from app.mail.models import OutboxMail
from config import ConfigError
from tests.conftest import json_of
from tests.factories import create_user
from tests.support.mailbox import Mailbox
from tests.support.processes import ROOT

FORGOT = "/api/v1/auth/password/forgot"
RESET = "/api/v1/auth/password/reset"
NEW_PASSWORD = "Brand-New-Secret-88"


@pytest.fixture
def request_reset(client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]) -> Callable[[str], str]:
    """Ask for a reset link for ``email``, deliver the mail, return the token in it."""

    def ask(email: str) -> str:
        assert client.post(FORGOT, json={"email": email}).status_code == 202
        run_jobs()
        return mailbox.token_for(email)

    return ask


def test_forgot_is_202_for_known_and_unknown_emails(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    user = create_user(app)
    known = client.post(FORGOT, json={"email": user.email})
    unknown = client.post(FORGOT, json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert json_of(known)["data"] == json_of(unknown)["data"]
    run_jobs()
    assert len(mailbox.to(user.email)) == 1
    assert mailbox.to("nobody@example.com") == []


def test_reset_works_once_and_revokes_every_session(
    app: Flask, client: FlaskClient, request_reset: Callable[[str], str]
) -> None:
    user = create_user(app)
    token = request_reset(user.email)

    assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}).status_code == 204
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 401
    assert (
        client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {user.refresh_token}"}).status_code
        == 401
    )
    login = lambda pw: client.post("/api/v1/auth/login", json={"email": user.email, "password": pw})  # noqa: E731
    assert login(user.password).status_code == 401
    assert login(NEW_PASSWORD).status_code == 200

    again = client.post(RESET, json={"token": token, "password": "Another-Secret-99"})
    assert again.status_code == 422
    assert json_of(again)["error"]["details"][0]["field"] == "token"


def test_reset_token_expires(app: Flask, client: FlaskClient, request_reset: Callable[[str], str]) -> None:
    user = create_user(app)
    token = request_reset(user.email)
    with app.app_context():
        db.session.execute(
            sa.update(AccountToken)
            .where(AccountToken.user_id == uuid.UUID(user.id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}).status_code == 422
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200


def test_a_weak_new_password_keeps_the_token_usable(
    app: Flask, client: FlaskClient, request_reset: Callable[[str], str]
) -> None:
    user = create_user(app)
    token = request_reset(user.email)
    weak = client.post(RESET, json={"token": token, "password": "weak"})
    assert weak.status_code == 422
    assert json_of(weak)["error"]["details"][0]["field"] == "password"
    # Nothing was half-written: the token still works and the sessions are alive.
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}).status_code == 204


def test_a_request_from_someone_else_does_not_break_the_link_the_owner_was_mailed(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int], request_reset: Callable[[str], str]
) -> None:
    """Anyone can ask for a reset link for any address: a later request (an attacker's,
    sent to kill the link the owner is about to open) mails another link and leaves the
    first working. Once one is used, the others stop working."""
    user = create_user(app)
    owners = request_reset(user.email)
    strangers = client.post(FORGOT, json={"email": user.email}, environ_base={"REMOTE_ADDR": "198.51.100.66"})
    assert strangers.status_code == 202
    run_jobs()
    later = mailbox.token_for(user.email)
    assert later != owners
    assert client.post(RESET, json={"token": owners, "password": NEW_PASSWORD}).status_code == 204
    assert client.post(RESET, json={"token": later, "password": "Another-New-Secret-99"}).status_code == 422


def test_reset_mails_to_an_address_are_capped_whoever_asks(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    """Requests from many clients (each within its own limits) fill nobody's inbox: past
    ``RATELIMIT_RECOVERY_MAIL`` the answer is the same 202 and nothing is sent; the links
    already sent keep working. The "you already have an account" mail counts too."""
    user = create_user(app, verified=False)
    cap = min(item.amount for item in parse_many(app.config["RATELIMIT_RECOVERY_MAIL"]))
    for i in range(cap + 3):
        sent = client.post(FORGOT, json={"email": user.email}, environ_base={"REMOTE_ADDR": f"203.0.113.{i + 1}"})
        assert sent.status_code == 202
    registered = client.post(
        "/api/v1/auth/register",
        json={"email": user.email, "password": "Quite-Long-Secret-31", "full_name": "Someone Else"},
        environ_base={"REMOTE_ADDR": "203.0.113.200"},
    )
    assert registered.status_code == 201
    run_jobs()
    assert len(mailbox.to(user.email)) == cap
    assert (
        client.post(RESET, json={"token": mailbox.token_for(user.email), "password": NEW_PASSWORD}).status_code == 204
    )


def test_a_password_change_ends_the_reset_links_sent_before_it(
    app: Flask, client: FlaskClient, request_reset: Callable[[str], str]
) -> None:
    # Whoever changes their password after a scare must not be undone by a link that a
    # thief of their mailbox (or their old password) asked for before.
    user = create_user(app)
    token = request_reset(user.email)
    change = {"current_password": user.password, "password": NEW_PASSWORD}
    assert client.patch("/api/v1/users/me", json=change, headers=user.headers).status_code == 200

    refused = client.post(RESET, json={"token": token, "password": "Another-Secret-99"})
    assert refused.status_code == 422
    assert json_of(refused)["error"]["details"][0]["field"] == "token"
    login = client.post("/api/v1/auth/login", json={"email": user.email, "password": NEW_PASSWORD})
    assert login.status_code == 200
    # A link asked for after the change works.
    assert (
        client.post(RESET, json={"token": request_reset(user.email), "password": "Third-Secret-77"}).status_code == 204
    )


def test_deactivation_ends_the_reset_links_sent_before_it(
    app: Flask, client: FlaskClient, request_reset: Callable[[str], str]
) -> None:
    admin = create_user(app, role="admin")
    user = create_user(app)
    token = request_reset(user.email)
    for active in (False, True):
        response = client.patch(f"/api/v1/users/{user.id}", json={"is_active": active}, headers=admin.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
    assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}).status_code == 422


def test_tokens_are_stored_hashed(app: Flask, client: FlaskClient, request_reset: Callable[[str], str]) -> None:
    user = create_user(app)
    token = request_reset(user.email)
    with app.app_context():
        stored = db.session.scalars(sa.select(AccountToken.token_hash)).all()
    assert token not in stored
    assert all(len(h) == 64 for h in stored)


def test_a_reset_job_of_the_previous_version_with_a_plain_address_still_mails_the_link(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    from app.auth import tasks

    user = create_user(app)
    with app.app_context():
        tasks.send_reset_link(user.email)  # as a job enqueued before the address was sealed runs
    run_jobs()
    token = mailbox.token_for(user.email)
    assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}).status_code == 204


def _sealed_elsewhere(app: Flask, email: str) -> str:
    """``email`` sealed as a reset job's argument by a deployment with another SECRET_KEY."""
    from app.mail import sealing

    with app.app_context():
        keys, secret = app.extensions.pop(sealing._KEY_CACHE, None), app.config["SECRET_KEY"]
        app.config["SECRET_KEY"] = "another-secret-key-of-another-deployment-0123456789"
        try:
            return sealing.seal(email, context=sealing.JOB_ARGUMENTS)
        finally:
            app.config["SECRET_KEY"] = secret
            app.extensions[sealing._KEY_CACHE] = keys or {}


def test_a_reset_job_sealed_under_another_secret_key_fails_for_good_and_says_why(
    app: Flask, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    from rq import Retry

    from app.auth import recovery
    from app.extensions import redis_queues

    user = create_user(app)
    argument = _sealed_elsewhere(app, user.email)
    assert "@" not in argument
    with app.app_context():
        queue = redis_queues.queue("mail")  # in-process (the embedded default) it runs here
        job = queue.enqueue(recovery.SEND_RESET_LINK, argument, retry=Retry(max=2, interval=[10, 60]))
    run_jobs()
    with app.app_context():
        job.refresh()
        assert job.get_status() == "failed"  # not scheduled for a retry that cannot help
        assert job.id in queue.failed_job_registry.get_job_ids()
        result = job.latest_result()
        assert result is not None and "sealed under another SECRET_KEY" in (result.exc_string or "")
    assert mailbox.to(user.email) == []


def test_no_log_line_of_a_reset_request_holds_the_address(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int], caplog: pytest.LogCaptureFixture
) -> None:
    """The request, the job and the mail's delivery log what happened, never to whom: a log
    drain must not tell who asked for a reset link."""
    user = create_user(app)
    with caplog.at_level(logging.DEBUG):
        assert client.post(FORGOT, json={"email": user.email}).status_code == 202
        run_jobs()
    assert len(mailbox.to(user.email)) == 1
    assert any("sent" in record.getMessage() for record in caplog.records)
    local_part = user.email.split("@")[0]
    ours = [r for r in caplog.records if r.name != "mail.log"]  # not the test's SMTP server's
    assert not [r.getMessage() for r in ours if local_part in f"{r.getMessage()} {r.__dict__}"]


_LIMITS_OFF = """
import os, sys, tempfile
os.environ["FLASK_SKIP_DOTENV"] = "1"
folder = tempfile.mkdtemp()
env = {
    "APP_ENV": "testing", "TEST_DATABASE_URL": f"sqlite:///{folder}/t.db", "RATELIMIT_ENABLED": "false",
    "STORAGE_URL": f"file://{folder}/files", "MAIL_URL": "console",
}
from flask_migrate import upgrade
from app import create_app
from config import TestingConfig
app = create_app(TestingConfig(env))
with app.app_context():
    upgrade()
client = app.test_client()
body = {"email": "zoe@example.com", "password": "Kiwi-Harbor-Lantern-2931x", "full_name": "Zoe"}
print("register", client.post("/api/v1/auth/register", json=body).status_code)
print("register again", client.post("/api/v1/auth/register", json=body).status_code)
print("forgot", client.post("/api/v1/auth/password/forgot", json={"email": "zoe@example.com"}).status_code)
"""


def test_with_rate_limits_off_recovery_mail_still_goes(tmp_path: Path) -> None:
    """``RATELIMIT_ENABLED=false`` (a bench, a trusted network) turns off every limit, the
    cap on recovery mail included: registering an address that has an account was a 500
    (the limiter has no strategy then), and no reset link was ever sent. A process of its
    own: the limiter is one per process."""
    done = subprocess.run(
        [sys.executable, "-c", _LIMITS_OFF], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line for line in lines if not line.startswith("{")] == ["register 201", "register again 201", "forgot 202"]
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    mailed = [entry["message"].split(":")[0] for entry in logged if entry["message"].startswith("mail to ")]
    assert mailed == ["mail to zoe@example.com"] * 3, done.stdout[-3000:]  # welcome, "you have an account", reset


def test_whoever_spends_an_addresss_reset_links_the_owner_still_has_one_that_works(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    """The cap keeps strangers from filling an inbox, and cannot keep its owner from a
    reset: when it refuses the owner's request, the links it let through are in the owner's
    inbox and still work (no window is longer than a link lives; links do not retire each
    other). Notices without a link ("you already have an account") have a budget of their
    own: spending it leaves reset links alone."""
    user = create_user(app)  # verified: registering its address mails a notice without a link
    cap = min(item.amount for item in parse_many(app.config["RATELIMIT_RECOVERY_MAIL"]))
    for i in range(cap + 2):
        registered = client.post(
            "/api/v1/auth/register",
            json={"email": user.email, "password": "Quite-Long-Secret-31", "full_name": "Someone Else"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{i + 1}"},
        )
        assert registered.status_code == 201
    for i in range(cap):
        strangers = client.post(FORGOT, json={"email": user.email}, environ_base={"REMOTE_ADDR": f"203.0.113.{i + 1}"})
        assert strangers.status_code == 202
    run_jobs()
    assert len(mailbox.to(user.email)) == 2 * cap  # the notices' budget, then the links'
    owners = client.post(FORGOT, json={"email": user.email}, environ_base={"REMOTE_ADDR": "192.0.2.44"})
    assert owners.status_code == 202
    run_jobs()
    assert len(mailbox.to(user.email)) == 2 * cap  # refused, as its answer does not say
    assert (
        client.post(RESET, json={"token": mailbox.token_for(user.email), "password": NEW_PASSWORD}).status_code == 204
    )


def test_a_recovery_mail_window_longer_than_a_link_lives_stops_the_start() -> None:
    with pytest.raises(ConfigError, match=r"RATELIMIT_RECOVERY_MAIL's windows must be at most RESET_TOKEN_SECONDS"):
        config.TestingConfig({"RATELIMIT_RECOVERY_MAIL": "3 per 10 minutes; 10 per day"})
    with pytest.raises(ConfigError, match=r"got a window of 3600 s"):
        config.TestingConfig({"RESET_TOKEN_SECONDS": "1800"})
    config.TestingConfig({"RESET_TOKEN_SECONDS": "86400", "RATELIMIT_RECOVERY_MAIL": "3 per 10 minutes; 10 per day"})


@pytest.mark.services
def test_a_failed_delivery_logs_no_address(
    app: Flask, client: FlaskClient, run_jobs: Callable[[], int], caplog: pytest.LogCaptureFixture
) -> None:
    """An SMTP server refusing the recipient quotes it in its error: the row keeps the
    error whole (operators read it there), the logs (ours and RQ's traceback of the job)
    get it without the address."""
    user = create_user(app)
    refused = smtplib.SMTPRecipientsRefused({user.email: (550, b"No such user here")})
    with patch("app.mail.backends.SMTPBackend.send", side_effect=refused), caplog.at_level(logging.INFO):
        assert client.post(FORGOT, json={"email": user.email}).status_code == 202
        run_jobs()
    local_part = user.email.split("@")[0]
    ours = [r for r in caplog.records if r.name != "mail.log"]
    assert any("failed (attempt 1)" in r.getMessage() for r in ours)
    assert not [r.getMessage() for r in ours if local_part in f"{r.getMessage()} {r.exc_text or ''} {r.__dict__}"]
    with app.app_context():
        errors = db.session.scalars(sa.select(OutboxMail.last_error).where(OutboxMail.to_address == user.email)).all()
    assert errors and user.email in errors[0]
