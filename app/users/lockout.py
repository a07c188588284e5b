"""Account lockout: every wrong password for an account counts, wherever it was typed
(``/auth/login``, the dashboard's sign-in, ``current_password`` on ``PATCH /users/me``).

``LOGIN_MAX_FAILURES`` in a row lock the account for ``LOGIN_LOCKOUT_SECONDS``: while
locked, even the right password is answered with 423, so the lock is no oracle.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.db import db, utcnow
from app.errors import AccountLocked
from app.users.models import User

log = logging.getLogger(__name__)


def is_locked(user: User) -> bool:
    """Whether ``user`` is locked now; a lock that has run out is cleared (in the session)."""
    if user.locked_until is not None and user.locked_until <= utcnow():
        user.failed_login_count = 0
        user.locked_until = None
    return user.locked_until is not None


def locked_error(user: User) -> AccountLocked:
    assert user.locked_until is not None
    retry_after = max(1, int((user.locked_until - utcnow()).total_seconds()))
    return AccountLocked(
        f"Too many failed logins: try again in {retry_after // 60 + 1} minute(s)",
        headers={"Retry-After": str(retry_after)},
    )


def record_failure(user: User) -> None:
    """Count a wrong password atomically (concurrent attempts all count) and commit; raise
    423 when this one reached the threshold."""
    limit = int(current_app.config["LOGIN_MAX_FAILURES"])
    lock_until = utcnow() + timedelta(seconds=int(current_app.config["LOGIN_LOCKOUT_SECONDS"]))
    count = db.session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(
            failed_login_count=User.failed_login_count + 1,
            locked_until=sa.case((User.failed_login_count + 1 >= limit, lock_until), else_=User.locked_until),
        )
        .returning(User.failed_login_count)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    db.session.commit()
    if count >= limit:
        log.warning("account locked after %d failed password checks", count, extra={"locked_user_id": str(user.id)})
        db.session.refresh(user)
        raise locked_error(user)


def clear_failures(user: User) -> None:
    user.failed_login_count = 0
    user.locked_until = None
