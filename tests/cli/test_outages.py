"""Commands meeting an outage: one line saying what is unreachable and exit status 1, never
a traceback, and nothing half done."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.db import db, utcnow
from app.extensions import redis_queues
from app.mail import service as mail_service
from app.mail.models import OutboxMail
from tests.conftest import _service_environ
from tests.factories import create_user
from tests.support.services import redis_at, unreachable_redis

ROOT = Path(__file__).resolve().parents[2]
FLASK = os.path.join(os.path.dirname(sys.executable), "flask")


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["seed"], ""),
        (["create-admin", "boss@example.com"], "Admin-Passphrase-1\n"),
        (["mail", "relay"], ""),
        (["mail", "retry-failed"], ""),
        (["orders", "cancel-unpaid"], ""),
        (["orders", "purge-idempotency-keys"], ""),
        (["export-products", "/dev/null"], ""),
    ],
)
def test_a_command_without_its_database_says_so_in_one_line(args: list[str], stdin: str) -> None:
    env = {**_service_environ(), "FLASK_APP": "wsgi", "APP_ENV": "development"}
    env["DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    env["DATABASE_CONNECT_TIMEOUT"] = "2"
    env.pop("REDIS_URL", None)
    proc = subprocess.run(
        [FLASK, *args], input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Error: The database is unreachable" in proc.stderr, proc.stderr


def test_export_into_a_missing_directory_is_one_line(app: Flask, tmp_path: Path) -> None:
    result = app.test_cli_runner().invoke(args=["export-products", str(tmp_path / "missing" / "out.csv")])
    assert result.exit_code == 1
    assert "Cannot write" in result.output and "No such file or directory" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_email_taken_while_create_admin_ran_is_a_clean_refusal(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two create-admins (or a registration) for one email at once: the loser's unique
    violation is a sentence, not a traceback quoting the new password's hash."""
    from app.users import service as users_service

    create_user(app, email="raced@example.com")
    monkeypatch.setattr(users_service, "find_by_email", lambda email: None)  # as if it looked just before
    result = app.test_cli_runner().invoke(args=["create-admin", "raced@example.com"], input="Admin-Passphrase-1\n")
    assert result.exit_code == 1
    assert "got an account while this ran" in result.output and "--promote" in result.output
    assert "argon2" not in result.output and "Traceback" not in result.output


def _failed_mail(app: Flask) -> uuid.UUID:
    user = create_user(app, email="mailed@example.com")
    with app.app_context():
        mail = OutboxMail(
            id=uuid.uuid4(),
            to_address=user.email,
            template="welcome",
            subject="Hello",
            text_body="Hello",
            attempts=6,
            failed_at=utcnow(),
            last_error="SMTPDataError: 451",
        )
        db.session.add(mail)
        db.session.commit()
        return mail.id


@pytest.mark.services
@pytest.mark.parametrize("args", [["mail", "relay"], ["mail", "retry-failed"]])
def test_mail_commands_refuse_to_report_success_while_redis_is_down(app: Flask, args: list[str]) -> None:
    mail_id = _failed_mail(app)
    with redis_at(app, unreachable_redis()):
        result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1, result.output
    assert "Redis is unreachable" in result.output and "nothing was changed" in result.output
    with app.app_context():
        mail = db.session.get(OutboxMail, mail_id)
        assert mail is not None and mail.failed_at is not None and mail.attempts == 6  # untouched


@pytest.mark.services
def test_retry_failed_takes_the_mail_out_of_rqs_failed_registry(app: Flask) -> None:
    """Delivered after a retry, a mail no longer shows as failed in the dashboard and the
    metrics (it stayed in RQ's failed registry, kept 30 days, and so counted as failed)."""
    from rq.job import Job

    mail_id = _failed_mail(app)
    job_id = mail_service.job_id_for(mail_id)
    with app.app_context():
        queue = redis_queues.queue("mail")
        failed: Any = Job.create("app.mail.tasks.deliver", args=(str(mail_id),), id=job_id, connection=queue.connection)
        failed.origin = "mail"
        failed.save()
        queue.failed_job_registry.add(failed, ttl=3600)
        assert job_id in queue.failed_job_registry.get_job_ids()
    result = app.test_cli_runner().invoke(args=["mail", "retry-failed"])
    assert result.exit_code == 0, result.output
    assert "Retrying 1 failed mail(s)." in result.output
    with app.app_context():
        queue = redis_queues.queue("mail")
        assert job_id not in queue.failed_job_registry.get_job_ids()
        assert job_id in queue.get_job_ids()
        row = db.session.scalars(sa.select(OutboxMail).where(OutboxMail.id == mail_id)).one()
        assert (row.failed_at, row.attempts) == (None, 0)
