"""RQ jobs of the mail domain."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.db import db, utcnow
from app.jobs import task, without_secrets
from app.mail import service
from app.mail.backends import Mail, backend_for
from app.mail.models import OutboxMail
from app.mail.sealing import InvalidToken, unseal

log = logging.getLogger(__name__)


class MailNotDelivered(Exception):
    """A delivery failed (the job's error, as RQ logs it: no address in it)."""


@task
def deliver(outbox_id: str) -> None:
    """Send one outbox mail, once. Failures propagate: RQ retries with backoff, and after
    the last attempt the row is marked failed (visible there and in RQ's failed jobs)."""
    mail_id = uuid.UUID(outbox_id)
    # Counted, and committed, before anything is sent: a work horse that dies mid-send (kill
    # -9, out of memory) runs none of what follows, and the relay fails a mail whose
    # attempts are used up instead of enqueueing it forever (service.relay_unsent).
    db.session.execute(
        sa.update(OutboxMail)
        .where(OutboxMail.id == mail_id, OutboxMail.sent_at.is_(None))
        .values(attempts=OutboxMail.attempts + 1)
    )
    db.session.commit()
    # Locked through the send: another job for this mail waits, then finds it sent.
    mail = db.session.get(OutboxMail, mail_id, with_for_update=True)
    if mail is None or mail.sent_at is not None:
        db.session.rollback()
        return
    try:
        text_body, html_body = mail.text_body, mail.html_body
        if mail.sensitive:
            text_body, html_body = unseal(text_body), html_body and unseal(html_body)
        message = Mail(
            sender=current_app.config["MAIL_FROM"],
            to=mail.to_address,
            subject=mail.subject,
            text_body=text_body,
            html_body=html_body,
            key=f"{outbox_id}.storefront",
        )
        backend_for(current_app.config["MAIL_URL"]).send(message)
    except Exception as exc:  # whatever it is (SMTP, network, a bug): recorded on the row, then retried
        _record_failure(mail, exc, final=isinstance(exc, InvalidToken) or mail.attempts >= service.MAX_ATTEMPTS)
        # RQ logs the traceback of what a job raises, and an SMTP error quotes the recipient
        # (a refused one, say): the row keeps the whole error, the log gets it without
        # addresses (``from None``: not the original's traceback either).
        raise MailNotDelivered(without_secrets(f"mail {mail.id}: {type(exc).__name__}: {exc}")) from None
    mail.sent_at = utcnow()
    mail.last_error = mail.failed_at = None
    if mail.sensitive:
        mail.text_body, mail.html_body = service.REDACTED, None
    db.session.commit()
    # No address: who asked for a reset link (or got any mail) is the outbox row's to say,
    # not the log drain's.
    log.info("mail %s sent", outbox_id, extra={"template": mail.template})


def _record_failure(mail: OutboxMail, exc: Exception, *, final: bool) -> None:
    # InvalidToken: sealed under another SECRET_KEY; no retry can open it.
    mail.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if final and mail.failed_at is None:
        mail.failed_at = utcnow()
    db.session.commit()
    level = logging.ERROR if final else logging.WARNING
    log.log(
        level,
        "mail %s failed (attempt %d%s): %s",
        mail.id,
        mail.attempts,
        ", giving up" if final else "",
        without_secrets(str(exc)),
    )


@task
def relay_unsent_mail() -> int:
    """Periodic: re-enqueue mail left unsent (see ``service.relay_unsent``)."""
    return service.relay_unsent(older_than=timedelta(seconds=60))
