"""RQ jobs of the auth domain."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from app.auth import recovery, sessions
from app.db import db, utcnow
from app.jobs import task
from app.mail import service as mail


@task
def send_reset_link(email: str) -> None:
    """Mail a reset link if ``email`` has an account (enqueued for every forgot request).
    ``email`` is sealed (``app.mail.sealing``); a plain one, from the previous version's
    jobs, is taken as it is."""
    recovery.send_reset_link(email=recovery.email_of_reset_job(email))


@task
def forget_what_served_its_purpose() -> dict[str, int]:
    """Periodic: what was kept of people for a purpose now over goes after
    ``RETENTION_SECONDS``: ended sessions (device, address), delivered mails' bodies."""
    before = utcnow() - timedelta(seconds=current_app.config["RETENTION_SECONDS"])
    counts = {"sessions": sessions.purge_ended(before), "mail_bodies": mail.forget_delivered(before)}
    db.session.commit()
    return counts
