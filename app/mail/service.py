"""Queue mail through the outbox; relay what was left unsent.

``send`` renders the mail and writes it to the outbox in the caller's transaction (it
only flushes); the delivery job is enqueued after that transaction commits. If Redis is
down at that moment the row stays unsent and ``relay_unsent`` enqueues it later, so an
outage delays mail but loses none, and a rolled-back change sends nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from app.db import db, insert_new, new_id, utcnow
from app.jobs import (
    DEFAULT_RETRY_INTERVALS,
    PendingJob,
    clear_failure,
    enqueue_after_commit,
    enqueue_now,
    has_live_job,
)
from app.mail.models import OutboxMail
from app.mail.sealing import seal
from app.urls import account_pages_url, public_base_url

log = logging.getLogger(__name__)

_templates = Environment(
    loader=PackageLoader("app.mail", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
# By dotted path: the job module imports this one.
DELIVER = "app.mail.tasks.deliver"
RETRIES = len(DEFAULT_RETRY_INTERVALS)
# The first try and every retry of one job: then the row is marked failed.
MAX_ATTEMPTS = 1 + RETRIES
REDACTED = "[redacted after delivery: this mail carried a one-time token]"
# RQ's job_timeout for a delivery. RQ's default (3 minutes) would end one still waiting
# for the server's answer to the end of the data, when the server may have the mail: the
# retry would send it again. This outlasts the longest a delivery can wait with MAIL_URL's
# default timeout: the five replies about the message (backends.MESSAGE_TIMEOUT, 5 minutes
# each) and the dialogue before them.
DELIVERY_JOB_TIMEOUT = 30 * 60


FORGOTTEN = "[removed: the account this mail was sent to was deleted]"


def forget_recipient(address: str, *, replacement: str) -> None:
    """A deleted account's mails (in the caller's transaction): those sent keep their row
    (what was sent, and when) with ``replacement`` for the address and no body; those not
    sent yet are dropped, unless one is being sent this moment (its row is locked: it goes
    out, and keeps its address)."""
    db.session.execute(
        sa.update(OutboxMail)
        .where(OutboxMail.to_address == address, OutboxMail.sent_at.is_not(None))
        .values(to_address=replacement, text_body=FORGOTTEN, html_body=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    unsent = (
        sa.select(OutboxMail.id)
        .where(OutboxMail.to_address == address, OutboxMail.sent_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    db.session.execute(
        sa.delete(OutboxMail).where(OutboxMail.id.in_(unsent)).execution_options(synchronize_session=False)
    )


EXPIRED = "[removed: kept for RETENTION_SECONDS after delivery]"


def forget_delivered(before: datetime) -> int:
    """Empty the bodies of the mails delivered before ``before`` (an order's confirmation
    holds its shipping address); the row (to whom, what, when) stays for support."""
    result = db.session.execute(
        sa.update(OutboxMail)
        .where(OutboxMail.sent_at < before, OutboxMail.text_body.not_in([EXPIRED, REDACTED, FORGOTTEN]))
        .values(text_body=EXPIRED, html_body=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def job_id_for(outbox_id: uuid.UUID) -> str:
    return f"mail-{outbox_id}"


def duration_text(seconds: int) -> str:
    """``86400`` → ``"24 hours"``, ``3600`` → ``"1 hour"``, ``5400`` → ``"90 minutes"``."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def render(template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """Subject, text body and HTML body of ``template`` (files <name>.subject.txt/.txt/.html)."""
    config = current_app.config
    values = {
        "app_name": "Storefront",
        "base_url": public_base_url(),
        "account_url": account_pages_url(),
        # How long the links of account mails work, as configured.
        "verify_valid_for": duration_text(int(config["VERIFY_TOKEN_SECONDS"])),
        "reset_valid_for": duration_text(int(config["RESET_TOKEN_SECONDS"])),
        **context,
    }
    subject = _templates.get_template(f"{template}.subject.txt").render(values).strip()
    text = _templates.get_template(f"{template}.txt").render(values)
    html = _templates.get_template(f"{template}.html").render(values)
    return subject, text, html


def send(*, to: str, template: str, context: Mapping[str, Any], sensitive: bool = False) -> OutboxMail:
    """Write the mail to the outbox in the current transaction; deliver after commit.

    The row is written at once (not by the session's next flush), its other columns at
    their defaults; the returned object is not in the session: load it by id to use it.

    ``sensitive``: the body carries a one-time token, so it is stored sealed and is
    redacted once delivered (``app.mail.sealing``).
    """
    subject, text, html = render(template, context)
    if sensitive:
        text, html = seal(text), seal(html)
    mail = OutboxMail(
        id=new_id(),
        to_address=to,
        template=template,
        subject=subject,
        text_body=text,
        html_body=html,
        sensitive=sensitive,
    )
    insert_new(mail)
    enqueue_after_commit(
        "mail",
        DELIVER,
        str(mail.id),
        job_id=job_id_for(mail.id),
        description=f"mail {template}",
        timeout=DELIVERY_JOB_TIMEOUT,
    )
    return mail


def retry_failed() -> tuple[int, int]:
    """Give mail that failed every attempt another round (after fixing ``MAIL_URL``, say):
    how many were given one, and how many of those were enqueued (the relay enqueues the
    rest once Redis is back: they are unsent and no longer failed).

    Enqueued at once, whatever RQ still holds for it: delivery is idempotent. Each leaves
    RQ's failed registry as it goes back to the queue (else a delivered mail would show
    as failed in the dashboard and the metrics for as long as the registry keeps it).
    """
    ids = db.session.scalars(
        sa.update(OutboxMail)
        .where(OutboxMail.sent_at.is_(None), OutboxMail.failed_at.is_not(None))
        .values(failed_at=None, attempts=0)
        .returning(OutboxMail.id)
    ).all()
    db.session.commit()
    enqueued = sum(_enqueue_delivery(outbox_id, "mail retry") for outbox_id in ids)
    return len(ids), enqueued


def relay_unsent(*, older_than: timedelta = timedelta(seconds=60), limit: int = 500) -> int:
    """Enqueue delivery for unsent mail that has no live job (Redis was down, a process died).

    A mail whose attempts are all used up without a result (each counts before it sends:
    its work horse died every time, killed or out of memory) is marked failed instead, for
    ``flask mail retry-failed``, as a mail whose every attempt failed is.

    Returns how many were enqueued.
    """
    cutoff = utcnow() - older_than
    rows = db.session.execute(
        sa.select(OutboxMail.id, OutboxMail.attempts)
        .where(OutboxMail.sent_at.is_(None), OutboxMail.failed_at.is_(None), OutboxMail.created_at <= cutoff)
        .order_by(OutboxMail.created_at)
        .limit(limit)
    ).all()
    db.session.rollback()
    enqueued = 0
    for outbox_id, attempts in rows:
        if has_live_job(job_id_for(outbox_id)):
            continue
        if attempts >= MAX_ATTEMPTS:
            _give_up(outbox_id, attempts)
        else:
            enqueued += _enqueue_delivery(outbox_id, "mail relay")
    if enqueued:
        log.info("relayed %d unsent mail(s)", enqueued)
    return enqueued


def _give_up(outbox_id: uuid.UUID, attempts: int) -> None:
    error = f"The delivery never finished: {attempts} attempts, the last without a result (its worker died?)"
    failed = db.session.scalar(
        sa.update(OutboxMail)
        .where(OutboxMail.id == outbox_id, OutboxMail.sent_at.is_(None), OutboxMail.failed_at.is_(None))
        .values(failed_at=utcnow(), last_error=error)
        .returning(OutboxMail.id)
    )
    db.session.commit()
    if failed is not None:
        log.error("mail %s failed: %s", outbox_id, error)


def _enqueue_delivery(outbox_id: uuid.UUID, description: str) -> bool:
    job = PendingJob(
        "mail", DELIVER, (str(outbox_id),), job_id_for(outbox_id), RETRIES, description, timeout=DELIVERY_JOB_TIMEOUT
    )
    # The job may have failed before (the relay sends again a mail whose job RQ gave up on):
    # going back to the queue, it leaves RQ's failed registry. If Redis is failing, the
    # enqueue would too: the relay sends it later.
    return clear_failure("mail", job_id_for(outbox_id)) and enqueue_now(job)
