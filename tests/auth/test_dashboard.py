"""/admin/rq: the RQ dashboard, for admins only (its security cases: tests/security)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask
from flask.testing import FlaskClient
from rq import Retry, SimpleWorker, Worker
from rq.job import Job

from app.db import db
from app.extensions import redis_queues
from app.jobs import record_last_error
from app.mail.models import OutboxMail
from app.mail.service import job_id_for
from tests.conftest import SERVICES, _service_environ, json_of
from tests.factories import AuthedUser, create_user
from tests.security.support import admin_sign_in
from tests.support.mailbox import Mailbox
from tests.support.processes import poll_until, rq_worker


def test_dashboard_is_for_admins_only(app: Flask, client: FlaskClient) -> None:
    admin, staff = create_user(app, role="admin"), create_user(app, role="staff")
    if not SERVICES:
        response = client.get("/admin/rq", headers=admin.headers)
        assert response.status_code == 503
        assert "REDIS_URL" in json_of(response)["error"]["message"]
        return
    anonymous = client.get("/admin/rq/")
    assert anonymous.status_code == 303
    assert anonymous.headers["Location"] == "/admin/login?next=/admin/rq/"
    assert client.get("/admin/rq/0/data/queues.json").status_code == 401
    assert client.get("/admin/rq/", headers=staff.headers).status_code == 403

    signed_in = admin_sign_in(client, admin.email, admin.password, data={"next": "/admin/rq/0/view/workers"})
    assert signed_in.headers["Location"] == "/admin/rq/0/view/workers"
    page = client.get("/admin/rq/")
    assert page.status_code == 200
    assert "RQ" in page.get_data(as_text=True)
    client.post("/api/v1/auth/password/forgot", json={"email": admin.email})  # queues a mail job
    queues = client.get("/admin/rq/0/data/queues.json")
    assert queues.status_code == 200
    mail = next(q for q in queues.get_json()["queues"] if q["name"] == "mail")
    assert mail["count"] == 1
    # API clients may use an admin's access token instead.
    assert client.get("/admin/rq/0/data/queues.json", headers=admin.headers).status_code == 200


def test_the_sign_in_only_sends_you_back_into_the_dashboard(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    targets = (
        "https://evil.example/",
        "//evil.example/admin/rq/",
        "/admin/rq/..//\\evil",
        "/api/v1/users",
        "/admin/rq/\r\nSet-Cookie: x=1",  # a header of its own in the redirect: was a 500
        "/admin/rq/ queues",
    )
    for target in targets:
        response = admin_sign_in(client, admin.email, admin.password, data={"next": target})
        assert response.headers["Location"] == "/admin/rq/", target


@pytest.mark.services
def test_compacting_an_empty_queue_is_done_not_a_redis_error(app: Flask, client: FlaskClient) -> None:
    # RQ's compact renames the queue's list, which Redis refuses when there is none: the
    # dashboard answered 503 ("redis unavailable") for a queue with nothing in it.
    admin = create_user(app, role="admin")
    empty = client.post("/admin/rq/queue/imports/compact", headers=admin.headers)
    assert (empty.status_code, empty.get_json()) == (200, {"status": "OK"})
    client.post("/api/v1/auth/password/forgot", json={"email": admin.email})  # queues a mail job
    full = client.post("/admin/rq/queue/mail/compact", headers=admin.headers)
    assert (full.status_code, full.get_json()) == (200, {"status": "OK"})
    queues = client.get("/admin/rq/0/data/queues.json", headers=admin.headers).get_json()["queues"]
    assert next(q["count"] for q in queues if q["name"] == "mail") == 1  # compacting keeps a live job


def test_a_sign_in_refused_for_its_rate_is_a_page(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    statuses = [admin_sign_in(client, admin.email, "Wrong-Passphrase-0").status_code for _ in range(30)]
    assert 429 in statuses
    refused = admin_sign_in(client, admin.email, "Wrong-Passphrase-0")
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert "Too many attempts" in refused.get_data(as_text=True)


@pytest.mark.services
@pytest.mark.parametrize(
    "path",
    [
        "/admin/rq/0/view/job/mail-expired",  # a finished job's result expires after minutes
        "/admin/rq/0/data/job/mail-expired.json",
        "/admin/rq/1/data/queues.json",  # there is one instance
        "/admin/rq/0/data/jobs/mail/bogus/8/asc/1.json",
        "/admin/rq/0/data/jobs/mail/failed/0/asc/1.json",
        "/admin/rq/0/data/jobs/mail/failed/abc/asc/1.json",
    ],
)
def test_what_the_dashboard_does_not_hold_is_not_found_not_an_error(app: Flask, client: FlaskClient, path: str) -> None:
    admin = create_user(app, role="admin")
    response = client.get(path, headers=admin.headers)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    if path.endswith(".json"):
        assert json_of(response)["error"]["code"] == "NOT_FOUND"
    else:
        assert response.mimetype == "text/html" and "No such job" in response.get_data(as_text=True)


@pytest.mark.services
@pytest.mark.parametrize("error", [KeyError("k"), ValueError("v"), ZeroDivisionError()])
def test_outside_the_dashboard_such_errors_stay_internal_errors(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """The dashboard's not-found mapping is the dashboard's alone: the same exceptions
    anywhere else are what any unexpected error is (logged, the 500 envelope)."""
    from app.products import reads

    def broken(**kwargs: object) -> None:
        raise error

    monkeypatch.setattr(reads, "list_categories", broken)
    response = client.get("/api/v1/categories")
    assert response.status_code == 500
    assert json_of(response)["error"]["code"] == "INTERNAL_ERROR"


def _signed_in_admin(app: Flask, client: FlaskClient) -> AuthedUser:
    admin = create_user(app, role="admin")
    admin_sign_in(client, admin.email, admin.password)
    return admin


@pytest.mark.services
def test_a_reset_request_s_address_is_never_in_the_dashboard(app: Flask, client: FlaskClient) -> None:
    # RQ keeps a job's arguments in Redis; the workers view shows a running job's call.
    _signed_in_admin(app, client)
    user = create_user(app, email="user1@example.com")
    assert client.post("/api/v1/auth/password/forgot", json={"email": user.email}).status_code == 202
    with app.app_context():
        [job_id] = redis_queues.queue("mail").job_ids
        job = Job.fetch(job_id, connection=redis_queues.connection)
        assert user.email not in repr(job.args) and user.email not in job.get_call_string()
        # A worker running it, as RQ records one.
        worker = Worker(
            [redis_queues.queue("mail")], connection=redis_queues.connection, name=f"busy-{uuid.uuid4().hex}"
        )
        worker.register_birth()
        worker.set_current_job_id(job_id)
    try:
        workers = client.get("/admin/rq/0/data/workers.json")
        assert workers.status_code == 200
        [busy] = [w for w in workers.get_json()["workers"] if w["name"] == worker.name]
        assert busy["current_job"]["call_string"].startswith("app.auth.tasks.send_reset_link(")
        assert user.email not in workers.get_data(as_text=True)
        details = client.get(f"/admin/rq/0/data/job/{job_id}.json")
        assert details.status_code == 200 and user.email not in details.get_data(as_text=True)
    finally:
        with app.app_context():
            worker.register_death()


def failing_job() -> None:
    """A job that fails with credentials and an address in its message."""
    raise ConnectionError("cannot reach smtp://mailer:hunter2-secret@smtp.example:587 for someone@example.com")


@pytest.mark.services
def test_a_job_waiting_for_its_retry_shows_its_last_error_without_secrets(app: Flask, client: FlaskClient) -> None:
    _signed_in_admin(app, client)
    with app.app_context():
        queue = redis_queues.queue("housekeeping")
        job = queue.enqueue(failing_job, retry=Retry(max=3, interval=600), description="a failing job")
        SimpleWorker([queue], connection=redis_queues.connection, exception_handlers=[record_last_error]).work(
            burst=True, with_scheduler=False
        )
    details = client.get(f"/admin/rq/0/data/job/{job.id}.json").get_json()
    assert details["status"] == "scheduled" and details["exc_info"] is None  # RQ's own: nothing until the end
    last_error = json.loads(details["metadata"])["last_error"]
    assert last_error["type"] == "ConnectionError" and last_error["retries_left"] == 2
    assert last_error["message"] == "cannot reach smtp://[redacted]@smtp.example:587 for [address]"
    page = client.get(f"/admin/rq/0/view/job/{job.id}").get_data(as_text=True)
    assert "Last error" in page and "<%- last_error.message %>" in page  # escaped, as every value there


class _BusyFirstTime(Mailbox):
    """An SMTP server that answers its first mail "451 try again later"."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        if not self.refused:
            self.refused += 1
            return "451 4.3.0 Too busy right now, try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def busy_smtp() -> Iterator[_BusyFirstTime]:
    server = _BusyFirstTime()
    server.start()
    yield server
    server.stop()


@pytest.mark.services
def test_through_a_real_worker_a_reset_mail_retried_shows_why_then_arrives(
    app: Flask, client: FlaskClient, busy_smtp: _BusyFirstTime, tmp_path: Path
) -> None:
    _signed_in_admin(app, client)
    user = create_user(app)
    # The worker shares the web's SECRET_KEY, as every process of a deployment does.
    env = {**_service_environ(), "MAIL_URL": busy_smtp.url, "SECRET_KEY": app.config["SECRET_KEY"]}
    with rq_worker(env, tmp_path / "worker.log", name=f"reset-{uuid.uuid4().hex[:8]}"):
        assert client.post("/api/v1/auth/password/forgot", json={"email": user.email}).status_code == 202

        def delivery_waiting() -> dict[str, Any] | None:
            with app.app_context():
                outbox_id = db.session.scalar(sa.select(OutboxMail.id).where(OutboxMail.to_address == user.email))
                db.session.rollback()
            if outbox_id is None:
                return None
            response = client.get(f"/admin/rq/0/data/job/{job_id_for(outbox_id)}.json")
            body: dict[str, Any] | None = response.get_json() if response.status_code == 200 else None
            return body if body is not None and body["status"] == "scheduled" else None

        waiting = poll_until(delivery_waiting, timeout=60, what="the mail's delivery to wait for its retry")
        last_error = json.loads(waiting["metadata"])["last_error"]
        assert last_error["type"] == "MailNotDelivered", last_error
        assert "SMTPDataError: (451" in last_error["message"] or "SMTPDataError: 451" in last_error["message"], (
            last_error
        )
        assert user.email not in json.dumps(waiting)
        poll_until(lambda: busy_smtp.to(user.email), timeout=60, what="the reset mail on its retry")
    token = busy_smtp.token_for(user.email)
    reset = client.post("/api/v1/auth/password/reset", json={"token": token, "password": "Brand-New-Secret-88"})
    assert reset.status_code == 204
