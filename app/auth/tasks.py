"""RQ jobs of the auth domain."""

from __future__ import annotations

from app.auth import recovery
from app.jobs import task


@task
def send_reset_link(email: str) -> None:
    """Mail a reset link if ``email`` has an account (enqueued for every forgot request)."""
    recovery.send_reset_link(email=email)
