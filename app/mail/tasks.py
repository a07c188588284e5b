"""RQ jobs of the mail domain."""

from __future__ import annotations

import logging
import smtplib
import uuid
from datetime import timedelta

from flask import current_app

from app.db import db, utcnow
from app.jobs import task
from app.mail import service
from app.mail.backends import Mail, backend_for
from app.mail.models import OutboxMail

log = logging.getLogger(__name__)


@task
def deliver(outbox_id: str) -> None:
    """Send one outbox mail, once. Failures propagate: RQ retries with backoff."""
    mail = db.session.get(OutboxMail, uuid.UUID(outbox_id), with_for_update=True)
    if mail is None or mail.sent_at is not None:
        db.session.rollback()
        return
    message = Mail(
        sender=current_app.config["MAIL_FROM"],
        to=mail.to_address,
        subject=mail.subject,
        text_body=mail.text_body,
        html_body=mail.html_body,
    )
    mail.attempts += 1
    try:
        backend_for(current_app.config["MAIL_URL"]).send(message)
    except (smtplib.SMTPException, OSError) as exc:
        mail.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        db.session.commit()
        log.warning("mail %s to %s failed (attempt %d): %s", outbox_id, mail.to_address, mail.attempts, exc)
        raise
    mail.sent_at = utcnow()
    mail.last_error = None
    db.session.commit()
    log.info("mail %s sent to %s", outbox_id, mail.to_address, extra={"template": mail.template})


@task
def relay_unsent_mail() -> int:
    """Periodic: re-enqueue mail left unsent (see ``service.relay_unsent``)."""
    return service.relay_unsent(older_than=timedelta(seconds=60))
