"""Mail goes through the outbox: nothing for rolled-back changes, nothing lost when Redis is down."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.job import Job, JobStatus

from app.db import db
from app.extensions import redis_queues
from app.mail import service as mail_service
from app.mail import tasks as mail_tasks
from app.mail.backends import MESSAGE_TIMEOUT, ConsoleBackend, Mail, SMTPBackend, backend_for
from app.mail.models import OutboxMail
from app.mail.tasks import MailNotDelivered, deliver
from tests.conftest import _service_environ
from tests.factories import create_user
from tests.support.mailbox import Mailbox
from tests.support.processes import poll_until, rq_worker, work_horses

PASSWORD = "Sturdy-Passphrase-7"


@contextmanager
def redis_down(app: Flask) -> Iterator[None]:
    """Point the job queues at a port where nothing listens (a real connection failure)."""
    state = app.extensions[redis_queues.key]
    saved = state.queues
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    state.queues = {name: Queue(name, connection=dead) for name in saved}
    try:
        yield
    finally:
        state.queues = saved


def outbox(app: Flask) -> list[OutboxMail]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(OutboxMail).order_by(OutboxMail.created_at)))
        db.session.expunge_all()
        return rows


def test_mail_written_while_redis_is_down_is_sent_after_the_relay(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    with redis_down(app):
        response = client.post(
            "/api/v1/auth/register", json={"email": "late@example.com", "password": PASSWORD, "full_name": "Late"}
        )
    # The registration succeeded; its mail waits in the outbox.
    assert response.status_code == 201
    run_jobs()
    assert mailbox.to("late@example.com") == []
    [row] = outbox(app)
    assert row.sent_at is None

    # Redis is back: the periodic relay enqueues it and a worker delivers it.
    with app.app_context():
        assert mail_service.relay_unsent(older_than=timedelta(0)) == 1
    run_jobs()
    assert len(mailbox.to("late@example.com")) == 1
    [row] = outbox(app)
    assert row.sent_at is not None
    assert row.attempts == 1
    # Relaying again sends nothing twice.
    with app.app_context():
        assert mail_service.relay_unsent(older_than=timedelta(0)) == 0


def test_one_time_tokens_are_sealed_at_rest_and_redacted_once_delivered(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    user = create_user(app)
    with redis_down(app):  # keep the mail waiting in the outbox, as during an outage
        assert client.post("/api/v1/auth/password/forgot", json={"email": user.email}).status_code == 202
    [row] = outbox(app)
    assert row.sensitive and row.sent_at is None
    assert "token=" not in row.text_body and "token=" not in (row.html_body or "")
    assert row.text_body.startswith("gAAAAA")  # a Fernet token: nothing of the text is readable

    with app.app_context():
        mail_service.relay_unsent(older_than=timedelta(0))
    run_jobs()
    token = mailbox.token_for(user.email)
    [row] = outbox(app)
    assert row.sent_at is not None
    assert row.text_body == mail_service.REDACTED and row.html_body is None
    assert token not in row.text_body
    # The delivered token works, once.
    reset = {"token": token, "password": "A-Brand-New-Secret-9"}
    assert client.post("/api/v1/auth/password/reset", json=reset).status_code == 204


def test_mail_failing_every_attempt_is_marked_failed_and_left_for_an_operator(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    app.config["MAIL_URL"], working = "smtp://127.0.0.1:1?timeout=1", app.config["MAIL_URL"]
    try:
        client.post("/api/v1/auth/register", json={"email": "g@example.com", "password": PASSWORD, "full_name": "G"})
        run_jobs()
        [row] = outbox(app)
        with app.app_context():
            # What RQ's retries do, without waiting for their backoff.
            while row.attempts < mail_service.MAX_ATTEMPTS:
                with pytest.raises(MailNotDelivered, match="ConnectionRefusedError"):
                    deliver(str(row.id))
                [row] = outbox(app)
    finally:
        app.config["MAIL_URL"] = working
    assert row.attempts == mail_service.MAX_ATTEMPTS
    assert row.failed_at is not None and row.sent_at is None
    assert "ConnectionRefusedError" in (row.last_error or "")
    # An operator fixes MAIL_URL and sends it again.
    row = _left_alone_until_an_operator_sends_it(app, run_jobs, mailbox, "g@example.com")
    assert row.sent_at is not None and row.failed_at is None


def test_rejected_registration_writes_no_mail(app: Flask, client: FlaskClient, run_jobs: Callable[[], int]) -> None:
    response = client.post(
        "/api/v1/auth/register", json={"email": "x@example.com", "password": "weak", "full_name": "X"}
    )
    assert response.status_code == 422
    run_jobs()
    assert outbox(app) == []


def test_smtp_failure_is_recorded_and_retried(app: Flask, client: FlaskClient, run_jobs: Callable[[], int]) -> None:
    app.config["MAIL_URL"], saved = "smtp://127.0.0.1:1?timeout=1", app.config["MAIL_URL"]
    try:
        client.post("/api/v1/auth/register", json={"email": "f@example.com", "password": PASSWORD, "full_name": "F"})
        run_jobs()
    finally:
        app.config["MAIL_URL"] = saved
    [row] = outbox(app)
    assert row.sent_at is None
    assert row.attempts == 1
    assert "ConnectionRefusedError" in (row.last_error or "")


def test_any_failure_of_a_delivery_is_recorded_not_only_smtp_ones(
    app: Flask, client: FlaskClient, run_jobs: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure nobody foresaw (here: a backend that cannot be built) is still counted and
    # recorded, so the row ends failed after its attempts instead of being relayed forever.
    def broken(url: str) -> None:
        raise ValueError(f"no backend for {url}")

    monkeypatch.setattr(mail_tasks, "backend_for", broken)
    client.post("/api/v1/auth/register", json={"email": "v@example.com", "password": PASSWORD, "full_name": "V"})
    run_jobs()
    [row] = outbox(app)
    assert (row.attempts, row.sent_at) == (1, None)
    assert "ValueError: no backend for" in (row.last_error or "")
    with app.app_context():
        while row.attempts < mail_service.MAX_ATTEMPTS:
            with pytest.raises(MailNotDelivered, match="ValueError: no backend for"):
                mail_tasks.deliver(str(row.id))
            [row] = outbox(app)
    assert row.failed_at is not None


def test_mail_url_parsing() -> None:
    smtp = backend_for("smtp://user%40x:p%3Ass@mail.example:2525?starttls=true")
    assert isinstance(smtp, SMTPBackend)
    assert (smtp.host, smtp.port, smtp.username, smtp.password, smtp.starttls, smtp.use_ssl) == (
        "mail.example",
        2525,
        "user@x",
        "p:ss",
        True,
        False,
    )
    ssl_backend = backend_for("smtps://mail.example")
    assert isinstance(ssl_backend, SMTPBackend) and ssl_backend.port == 465 and ssl_backend.use_ssl
    assert isinstance(backend_for("console"), ConsoleBackend)


def test_console_backend_logs_the_mail(caplog) -> None:
    caplog.set_level("INFO", logger="app.mail.backends")
    ConsoleBackend().send(Mail(sender="a@x", to="b@example.com", subject="Hi", text_body="Body text"))
    assert any("b@example.com" in r.getMessage() and "Body text" in r.getMessage() for r in caplog.records)


def test_html_part_escapes_user_input(app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs) -> None:
    client.post(
        "/api/v1/auth/register",
        json={"email": "h@example.com", "password": PASSWORD, "full_name": "<script>alert(1)</script>"},
    )
    run_jobs()
    [message] = mailbox.to("h@example.com")
    html = str(message.get_body(preferencelist=("html",)).get_content())
    assert "<script>" not in html and "&lt;script&gt;" in html


class _Answers421ToQuit(Mailbox):
    """A server that takes the mail (250 to its data) and answers QUIT "421" (as a server
    shutting down may)."""

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        return "421 4.3.2 Service shutting down"


@contextmanager
def smtp_server_of(app: Flask, server: Mailbox, options: str = "") -> Iterator[Mailbox]:
    """``server`` started, and the app's mail sent to it, for the test's duration."""
    app.config["MAIL_URL"], saved = server.start() + options, app.config["MAIL_URL"]
    try:
        yield server
    finally:
        app.config["MAIL_URL"] = saved
        server.stop()


def test_a_mail_the_server_accepted_is_sent_once_whatever_ending_the_session_answers(
    app: Flask, client: FlaskClient, run_jobs: Callable[[], int]
) -> None:
    with smtp_server_of(app, _Answers421ToQuit()) as server:
        client.post("/api/v1/auth/register", json={"email": "q@example.com", "password": PASSWORD, "full_name": "Q"})
        run_jobs()
        [row] = outbox(app)
        assert (row.sent_at is not None, row.attempts, row.last_error) == (True, 1, None)
        with app.app_context():
            assert mail_service.relay_unsent(older_than=timedelta(0)) == 0
        run_jobs()
        assert len(server.to("q@example.com")) == 1


class _ScansBeforeAnswering(Mailbox):
    """A server that takes its time (2 s) to answer the end of the data, as one scanning
    the mail may: it has the mail meanwhile."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(2)
        return reply


def test_the_answer_to_the_end_of_the_data_is_waited_for_longer_than_the_dialogue(
    app: Flask, client: FlaskClient, run_jobs: Callable[[], int]
) -> None:
    # MAIL_URL's timeout (1 s here) bounds connecting and the dialogue; giving up on the
    # server's answer after it sent a new copy on every retry.
    with smtp_server_of(app, _ScansBeforeAnswering(), "?timeout=1") as server:
        client.post("/api/v1/auth/register", json={"email": "s@example.com", "password": PASSWORD, "full_name": "S"})
        run_jobs()
        [row] = outbox(app)
        assert (row.sent_at is not None, row.attempts, row.last_error) == (True, 1, None)
        assert len(server.to("s@example.com")) == 1


def test_rq_lets_a_delivery_wait_for_the_servers_answer(
    app: Flask, client: FlaskClient, run_jobs: Callable[[], int]
) -> None:
    # RQ ending the job while it waits (its default job_timeout is 3 minutes) would send
    # the mail again on the retry: the job's own timeout outlasts the five waits about the
    # message, relayed or not.
    with redis_down(app):
        client.post("/api/v1/auth/register", json={"email": "t@example.com", "password": PASSWORD, "full_name": "T"})
    client.post("/api/v1/auth/register", json={"email": "u@example.com", "password": PASSWORD, "full_name": "U"})
    with app.app_context():
        assert mail_service.relay_unsent(older_than=timedelta(0)) == 1
        run_jobs()
        for row in outbox(app):
            job = Job.fetch(mail_service.job_id_for(row.id), connection=redis_queues.connection)
            assert job.timeout is not None and job.timeout > 5 * MESSAGE_TIMEOUT


def test_a_mail_whose_attempts_never_finished_is_failed_not_relayed_forever(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    # What a work horse killed on every attempt (kill -9, out of memory) leaves: each
    # attempt counted as it began, none recorded an end, and no job is left in RQ.
    with redis_down(app):
        client.post("/api/v1/auth/register", json={"email": "k@example.com", "password": PASSWORD, "full_name": "K"})
    with app.app_context():
        db.session.execute(sa.update(OutboxMail).values(attempts=mail_service.MAX_ATTEMPTS))
        db.session.commit()
        assert mail_service.relay_unsent(older_than=timedelta(0)) == 0
    run_jobs()
    assert mailbox.to("k@example.com") == []
    [row] = outbox(app)
    assert row.failed_at is not None and row.sent_at is None
    assert f"never finished: {mail_service.MAX_ATTEMPTS} attempts" in (row.last_error or "")
    # Failed like any mail that used its attempts: it waits for an operator, who sends it.
    row = _left_alone_until_an_operator_sends_it(app, run_jobs, mailbox, "k@example.com")
    assert (row.sent_at is not None, row.failed_at, row.attempts) == (True, None, 1)


def _left_alone_until_an_operator_sends_it(
    app: Flask, run_jobs: Callable[[], int], mailbox: Mailbox, address: str
) -> OutboxMail:
    """A failed mail: the relay does not retry it (not forever); ``flask mail retry-failed``
    sends it, once. Its row, then."""
    with app.app_context():
        assert mail_service.relay_unsent(older_than=timedelta(0)) == 0
    result = app.test_cli_runner().invoke(args=["mail", "retry-failed"])
    assert "Retrying 1 failed mail(s)" in result.output, result.output
    run_jobs()
    assert len(mailbox.to(address)) == 1
    [row] = outbox(app)
    return row


class _HoldsTheFirstMail(Mailbox):
    """A server that never answers the end of its first mail's data (not accepted: not kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        if not self.holding.is_set():
            self.holding.set()
            await asyncio.Event().wait()  # until the connection or the server ends
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.services
def test_an_attempt_whose_work_horse_is_killed_mid_send_is_counted(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    user = create_user(app)
    server = _HoldsTheFirstMail()
    # The worker shares the web's SECRET_KEY, as every process of a deployment does.
    env = {**_service_environ(), "MAIL_URL": server.start(), "SECRET_KEY": app.config["SECRET_KEY"]}
    try:
        with rq_worker(env, tmp_path / "worker.log", name=f"killed-{uuid.uuid4().hex[:8]}") as worker:
            assert client.post("/api/v1/auth/password/forgot", json={"email": user.email}).status_code == 202
            poll_until(server.holding.is_set, timeout=60, what="the mail's data to reach the server")
            for horse in work_horses(worker.pid):
                os.kill(horse, signal.SIGKILL)  # as the kernel's OOM killer does
            # The attempt counts although none of its code ran after the send began.
            poll_until(lambda: outbox(app)[0].attempts == 1, timeout=10, what="the killed attempt to count")
            # RQ's retry sends it: at least once.
            poll_until(lambda: server.to(user.email), timeout=60, what="the mail on its retry")
            poll_until(lambda: outbox(app)[0].sent_at, timeout=10, what="the mail to be marked sent")
    finally:
        server.stop()
    [row] = outbox(app)
    assert row.attempts == 2 and len(server.to(user.email)) == 1


@pytest.mark.services
def test_a_relayed_mail_leaves_rqs_failed_registry(app: Flask, client: FlaskClient) -> None:
    # Its job failed (a work horse killed on its last retry, say) and the mail has attempts
    # left: the relay sends it again, and it no longer counts in rq_failed_jobs.
    with redis_down(app):
        client.post("/api/v1/auth/register", json={"email": "r@example.com", "password": PASSWORD, "full_name": "R"})
    [row] = outbox(app)
    job_id = mail_service.job_id_for(row.id)
    with app.app_context():
        queue = redis_queues.queue("mail")
        failed = Job.create(mail_service.DELIVER, args=(str(row.id),), id=job_id, connection=queue.connection)
        failed.origin = "mail"
        failed.save()
        queue.failed_job_registry.add(failed, ttl=3600)
        failed.set_status(JobStatus.FAILED)
        assert mail_service.relay_unsent(older_than=timedelta(0)) == 1
        assert job_id not in queue.failed_job_registry.get_job_ids()
        assert job_id in queue.get_job_ids()
