"""RQ jobs of the auth domain."""

from __future__ import annotations

from app.auth import recovery
from app.jobs import task


@task
def send_reset_link(email: str) -> None:
    """Mail a reset link if ``email`` has an account (enqueued for every forgot request).
    ``email`` is sealed (``app.mail.sealing``); a plain one, from the previous version's
    jobs, is taken as it is."""
    recovery.send_reset_link(email=recovery.email_of_reset_job(email))
