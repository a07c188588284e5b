"""API2:2023 Broken Authentication.

The dashboard signs in through the login service (limits, lockout, answers); every wrong
password counts toward the lockout wherever it was typed; new passwords pass a strength
estimate; a reset request does the same work for every email; tokens stay unforgeable.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.auth import recovery
from app.db import db
from app.jobs import PendingJob
from app.mail import service as mail_service
from tests.conftest import SERVICES, json_of
from tests.factories import bearer, create_user
from tests.security.support import ADMIN_LOGIN, LOGIN, admin_sign_in, set_cookies
from tests.support.mailbox import Mailbox

ME = "/api/v1/users/me"
WRONG = "Wrong-Password-99"


def page_message(response: Any) -> str:
    match = re.search(r'<p class="message" role="alert">([^<]*)</p>', response.get_data(as_text=True))
    return match.group(1) if match else ""


def test_dashboard_sign_in_answers_like_the_login_api(app: Flask, client: FlaskClient) -> None:
    admin, staff = create_user(app, role="admin"), create_user(app, role="staff")
    api_wrong = json_of(client.post(LOGIN, json={"email": admin.email, "password": WRONG}))["error"]["message"]

    wrong = admin_sign_in(client, admin.email, WRONG)
    unknown = admin_sign_in(client, "nobody@example.com", WRONG)
    not_admin = admin_sign_in(client, staff.email, staff.password)  # the right password, no permission
    assert wrong.status_code == unknown.status_code == not_admin.status_code == 401
    assert page_message(wrong) == page_message(unknown) == page_message(not_admin) == api_wrong
    assert client.get_cookie("storefront_admin", path="/admin") is None

    ok = admin_sign_in(client, admin.email, admin.password)
    assert ok.status_code == 303 and ok.headers["Location"] == "/admin/rq/"
    cookies = set_cookies(ok)
    session_cookie = cookies["storefront_admin"]
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie and "Path=/admin" in session_cookie
    assert "Secure" not in session_cookie  # testing runs on http; production sets Secure (API8)
    assert "SameSite=Strict" in cookies["_csrf_token"]


def test_dashboard_guesses_count_toward_the_lockout_and_the_lock_is_no_oracle(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    for _ in range(3):
        assert admin_sign_in(client, admin.email, WRONG).status_code == 401
    assert client.post(LOGIN, json={"email": admin.email, "password": WRONG}).status_code == 401
    locked = admin_sign_in(client, admin.email, WRONG)  # the fifth failure, wherever it was typed
    assert locked.status_code == 423
    assert locked.headers["Retry-After"].isdigit()
    # While locked the right and a wrong password get the same answer, on both doors.
    for password in (admin.password, WRONG):
        assert admin_sign_in(client, admin.email, password).status_code == 423
        assert client.post(LOGIN, json={"email": admin.email, "password": password}).status_code == 423


def test_dashboard_sign_in_is_rate_limited_per_ip_and_per_email(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES", 1000)  # so that the lockout (423) cannot answer first
    for _ in range(10):  # ten tries at one address from one client
        response = admin_sign_in(client, "ghost@example.com", WRONG, environ_base={"REMOTE_ADDR": "203.0.113.1"})
        assert response.status_code == 401
    refused = admin_sign_in(client, "ghost@example.com", WRONG, environ_base={"REMOTE_ADDR": "203.0.113.1"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"].isdigit() and "X-RateLimit-Limit" in refused.headers
    # Another client at that address is heard (the address's owner is not locked out by it).
    elsewhere = admin_sign_in(client, "ghost@example.com", WRONG, environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert elsewhere.status_code == 401

    statuses = [
        admin_sign_in(client, f"user{n}@example.com", WRONG, environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code
        for n in range(21)
    ]
    assert statuses == [401] * 20 + [429]


def test_dashboard_sign_in_refuses_a_cross_site_form(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    response = admin_sign_in(client, admin.email, admin.password, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert client.get_cookie("storefront_admin", path="/admin") is None


@pytest.mark.services
def test_dashboard_takes_no_http_basic_and_its_session_ends_at_sign_out(app: Flask, client: FlaskClient) -> None:
    import base64

    admin = create_user(app, role="admin")
    basic = {"Authorization": "Basic " + base64.b64encode(f"{admin.email}:{admin.password}".encode()).decode()}
    response = client.get("/admin/rq/", headers=basic)
    assert response.status_code == 303 and response.headers["Location"].startswith("/admin/login")
    assert "WWW-Authenticate" not in response.headers  # no browser prompt for Basic credentials

    assert admin_sign_in(client, admin.email, admin.password).status_code == 303
    assert client.get("/admin/rq/").status_code == 200
    stolen = client.get_cookie("storefront_admin", path="/admin")
    assert stolen is not None
    token = client.get_cookie("_csrf_token", path="/admin")
    assert token is not None
    logout = client.post("/admin/logout", data={"csrf_token": token.value}, headers={"Sec-Fetch-Site": "same-origin"})
    assert logout.status_code == 303
    # The old cookie, replayed after sign-out, opens nothing: its session row is revoked.
    client.set_cookie("storefront_admin", stolen.value, path="/admin")
    assert client.get("/admin/rq/").status_code == 303
    assert client.get("/admin/rq/0/data/queues.json").status_code == 401


def test_wrong_current_passwords_count_toward_the_lockout(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    change = {"password": "Brand-New-Secret-88"}
    for _ in range(4):
        response = client.patch(ME, json={**change, "current_password": WRONG}, headers=user.headers)
        assert response.status_code == 422
        assert json_of(response)["error"]["details"][0]["field"] == "current_password"
    assert client.patch(ME, json={**change, "current_password": WRONG}, headers=user.headers).status_code == 423
    # Now even the right password is refused, here and at login.
    right = client.patch(ME, json={**change, "current_password": user.password}, headers=user.headers)
    assert right.status_code == 423
    assert client.post(LOGIN, json={"email": user.email, "password": user.password}).status_code == 423


def test_a_right_current_password_clears_the_count(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    for _ in range(4):
        client.patch(ME, json={"password": "Brand-New-Secret-88", "current_password": WRONG}, headers=user.headers)
    ok = client.patch(
        ME, json={"password": "Brand-New-Secret-88", "current_password": user.password}, headers=user.headers
    )
    assert ok.status_code == 200
    assert client.post(LOGIN, json={"email": user.email, "password": WRONG}).status_code == 401  # count restarted


@pytest.mark.parametrize("password", ["Password1234", "Aaaaaaaaaaaa", "Qwerty123456", "123456789012"])
def test_guessable_passwords_are_refused(client: FlaskClient, password: str) -> None:
    response = client.post(
        "/api/v1/auth/register", json={"email": "ann@example.com", "password": password, "full_name": "Ann Lee"}
    )
    assert response.status_code == 422
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["password"]


def test_the_strength_estimate_knows_the_email_and_the_name(client: FlaskClient) -> None:
    body = {"email": "anna.w@example.com", "password": "Wisniewska1987!", "full_name": "Anna Wisniewska"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 422
    stranger = {**body, "email": "bo@example.com", "full_name": "Bo Smith"}
    assert client.post("/api/v1/auth/register", json=stranger).status_code == 201


def test_a_weak_new_password_is_refused_on_change_and_reset_too(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    response = client.patch(
        ME, json={"password": "Password1234", "current_password": user.password}, headers=user.headers
    )
    assert response.status_code == 422
    reset = client.post("/api/v1/auth/password/reset", json={"token": "x" * 43, "password": "Aaaaaaaaaaaa"})
    assert reset.status_code == 422
    assert "password" in {d["field"] for d in json_of(reset)["error"]["details"]}


def test_forgot_password_does_the_same_work_for_every_email(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing follows work: the request only hands the email to a job, the same job for a
    known and an unknown address, and touches the database for neither."""
    user = create_user(app)
    jobs: list[PendingJob] = []
    monkeypatch.setattr(recovery, "enqueue_now", lambda job: jobs.append(job) or True)
    statements: dict[str, list[str]] = {}
    with app.app_context():
        engine = db.engine
    for email in (user.email, "nobody@example.com"):
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any, seen: list[str] = seen) -> None:
            seen.append(statement)

        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            assert client.post("/api/v1/auth/password/forgot", json={"email": email}).status_code == 202
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        statements[email] = seen
    assert statements[user.email] == statements["nobody@example.com"] == []
    known, unknown = jobs
    assert (known.queue, known.func, known.description) == (unknown.queue, unknown.func, unknown.description)
    # The address is sealed: RQ keeps a job's arguments in Redis, shown by the dashboard.
    from app.mail import sealing

    with app.app_context():
        opened = [sealing.unseal(job.args[0], context=sealing.JOB_ARGUMENTS) for job in jobs]
    assert opened == [user.email, "nobody@example.com"]
    assert all(len(job.args) == 1 and "@" not in job.args[0] for job in jobs)

    # The job does the rest: a link for the account, nothing for the stranger.
    from app.auth.tasks import send_reset_link

    with app.app_context():
        send_reset_link(known.args[0])
        send_reset_link(unknown.args[0])
    run_jobs()
    assert len(mailbox.to(user.email)) == 1 and mailbox.to("nobody@example.com") == []


def test_a_forgot_request_during_a_redis_outage_is_not_lost(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = create_user(app)
    monkeypatch.setattr(recovery, "enqueue_now", lambda job: False)  # Redis refuses the job
    assert client.post("/api/v1/auth/password/forgot", json={"email": user.email}).status_code == 202
    monkeypatch.undo()
    with app.app_context():  # the mail waits in the outbox; the clock's relay sends it
        mail_service.relay_unsent(older_than=timedelta(0))
    run_jobs()
    assert len(mailbox.to(user.email)) == 1


def test_the_lockout_tells_no_one_whether_an_account_exists(app: Flask, client: FlaskClient) -> None:
    """Five wrong passwords lock an unknown email as they lock an account, on both doors
    (the API and the dashboard), and the README's security notes say so."""
    admin = create_user(app, role="admin")
    for email in (admin.email, "ghost@example.com"):
        for _ in range(2):
            assert admin_sign_in(client, email, WRONG).status_code == 401
            assert client.post(LOGIN, json={"email": email, "password": WRONG}).status_code == 401
        locked = admin_sign_in(client, email, WRONG)
        assert (locked.status_code, page_message(locked)) == (423, "Too many failed logins: try again in 15 minute(s)")
        api = client.post(LOGIN, json={"email": email, "password": WRONG})
        assert api.status_code == 423 and json_of(api)["error"]["code"] == "ACCOUNT_LOCKED"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    security = readme.split("## Security", 1)[1].split("\n## ", 1)[0]
    assert "423" in security and "without an account" in security


def test_refresh_reuse_revokes_the_family_and_forged_tokens_fail(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    first = json_of(client.post(LOGIN, json={"email": user.email, "password": user.password}))["data"]
    second = json_of(client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"])))["data"]
    client.post("/api/v1/auth/refresh", headers=bearer(second["refresh_token"]))
    # Spent before the token spent last (which a client that lost an answer may send again
    # for REFRESH_REUSE_GRACE_SECONDS): a replay.
    replay = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert json_of(replay)["error"]["code"] == "TOKEN_REVOKED"
    header, payload, _ = user.access_token.split(".")
    assert client.get(ME, headers=bearer(f"{header}.{payload}.")).status_code == 401
    assert client.get(ME, headers=bearer(str(uuid.uuid4()))).status_code == 401


def test_dashboard_login_page_is_served_in_every_mode(client: FlaskClient) -> None:
    page = client.get(ADMIN_LOGIN)
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)
    assert SERVICES or client.get("/admin/rq").status_code == 503
