"""Account lockout: every wrong password for an account counts, wherever it was typed
(``/auth/login``, the dashboard's sign-in, ``current_password`` on ``PATCH /users/me``).

``LOGIN_MAX_FAILURES`` in a row lock the account for ``LOGIN_LOCKOUT_SECONDS``: while
locked, even the right password is answered with 423, so the lock is no oracle.

An email with no account that can sign in (none, or a deactivated one) is locked the
same way, its failures counted in Redis: if only accounts locked, five wrong passwords
would tell anyone whether an email is registered. Its count is kept for a day after its
last failure (an account's is kept until a success or a lock); while Redis fails it is
not counted, and the email is answered as a wrong password every time.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy.orm.attributes import set_committed_value

from app.db import db, utcnow
from app.errors import AccountLocked
from app.extensions import redis_queues
from app.security import email_digest
from app.users.models import User
from app.users.passwords import verify_password

log = logging.getLogger(__name__)


# A check that finds every check the window allows under way waits for their outcome
# (a right password among them starts a new count) this long, polling, before it counts
# the ones still unfinished as failures (their process may have died).
IN_FLIGHT_WAIT_SECONDS = 3.0
IN_FLIGHT_POLL_SECONDS = 0.05


def begin_check(user: User) -> int | None:
    """Count a password check of ``user`` before it is made, and commit: the count with
    this check in it, or None while the account is locked (nothing counted). Counted
    first, checks that arrive together cannot all be made: a lock window allows
    ``LOGIN_MAX_FAILURES`` checks however many come at once. A check beyond them waits
    for those under way (``IN_FLIGHT_WAIT_SECONDS`` at most): if one was right the count
    starts again and this one is made; if they were all wrong the account is locked.
    Called by ``check_password``. A lock that has run out starts a new count.
    ``updated_at`` is not touched: wrong passwords typed by anyone are not a change of
    the account."""
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while True:
        counted = _reserve(user)
        if counted is not None:
            return counted
        locked_until = db.session.scalar(sa.select(User.locked_until).where(User.id == user.id))
        db.session.commit()
        if locked_until is not None and locked_until > utcnow():
            return None
        # Waited long enough: checks that never ended count as the failures they were
        # counted as (if the count dropped meanwhile, a right one did end: try again).
        if time.monotonic() >= deadline and _lock_if_due(user):
            return None
        time.sleep(IN_FLIGHT_POLL_SECONDS)


def _reserve(user: User) -> int | None:
    """Count one more check while the window has room for it (committed); None if not."""
    now = utcnow()
    limit = int(current_app.config["LOGIN_MAX_FAILURES"])
    lock_ran_out = sa.and_(User.locked_until.is_not(None), User.locked_until <= now)
    counted = db.session.execute(
        sa.update(User)
        .where(
            User.id == user.id,
            sa.or_(User.locked_until.is_(None), lock_ran_out),
            sa.or_(lock_ran_out, User.failed_login_count < limit),
        )
        .values(
            failed_login_count=sa.case((lock_ran_out, 0), else_=User.failed_login_count) + 1,
            locked_until=None,
            updated_at=User.updated_at,
        )
        .returning(User.failed_login_count)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    db.session.commit()
    return counted


def _lock_if_due(user: User) -> bool:
    """Lock the account if its count of failures has reached the limit (a right password
    since clears it): committed; whether it is locked now."""
    now = utcnow()
    limit = int(current_app.config["LOGIN_MAX_FAILURES"])
    lock_until = now + timedelta(seconds=int(current_app.config["LOGIN_LOCKOUT_SECONDS"]))
    locked = db.session.execute(
        sa.update(User)
        .where(
            User.id == user.id,
            User.failed_login_count >= limit,
            sa.or_(User.locked_until.is_(None), User.locked_until <= now),
        )
        .values(locked_until=lock_until, updated_at=User.updated_at)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return getattr(locked, "rowcount", 0) == 1


def check_password(user: User, password: str) -> bool:
    """Whether ``password`` is ``user``'s, as every sign-in and ``current_password`` asks:
    counted first (``begin_check``, which commits), the hash compared whether or not the
    account is locked (the same work for every answer), 423 while locked or when this
    wrong one locks it; a right one clears count and lock (in the session)."""
    count = begin_check(user)
    ok = verify_password(user.password_hash, password)
    if count is None:
        raise locked_error(user)
    if not ok:
        if count >= int(current_app.config["LOGIN_MAX_FAILURES"]) and _lock_if_due(user):
            log.warning("account locked after %d failed password checks", count, extra={"locked_user_id": str(user.id)})
            raise locked_error(user)
        return False
    clear_failures(user)
    return True


def locked_error(user: User) -> AccountLocked:
    """The 423 for ``user``, locked now (as the database has it)."""
    locked_until = db.session.scalar(sa.select(User.locked_until).where(User.id == user.id))
    seconds = int((locked_until - utcnow()).total_seconds()) if locked_until is not None else 0
    return _locked_for(seconds)


def _locked_for(seconds: int) -> AccountLocked:
    retry_after = max(1, seconds)
    return AccountLocked(
        f"Too many failed logins: try again in {retry_after // 60 + 1} minute(s)",
        headers={"Retry-After": str(retry_after)},
    )


def clear_failures(user: User) -> None:
    """A password check of ``user`` succeeded: no failures, no lock (in the session's
    transaction; ``updated_at`` not touched)."""
    db.session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(failed_login_count=0, locked_until=None, updated_at=User.updated_at)
        .execution_options(synchronize_session=False)
    )
    # The loaded object says so too (it may be dumped or written again in this session).
    set_committed_value(user, "failed_login_count", 0)
    set_committed_value(user, "locked_until", None)


# --- emails without an account ---------------------------------------------------------------

NO_ACCOUNT_PREFIX = "auth:lockout:"
NO_ACCOUNT_COUNT_SECONDS = 24 * 60 * 60


def _no_account_keys(email: str) -> tuple[str, str]:
    digest = email_digest(email)
    return f"{NO_ACCOUNT_PREFIX}{digest}:failures", f"{NO_ACCOUNT_PREFIX}{digest}:locked"


def record_failure_without_account(email: str) -> None:
    """A sign-in to ``email``, which has no account that can sign in: raise 423 while it
    is locked, or when this failure locks it, as ``record_failure`` does for an account."""
    failures_key, locked_key = _no_account_keys(email)
    limit = int(current_app.config["LOGIN_MAX_FAILURES"])
    lockout_seconds = int(current_app.config["LOGIN_LOCKOUT_SECONDS"])
    connection = redis_queues.connection
    try:
        locked_ms = int(connection.pttl(locked_key))
        if locked_ms > 0:
            raise _locked_for(locked_ms // 1000)  # whole seconds left, as an account's lock counts them
        with connection.pipeline() as pipe:
            pipe.incr(failures_key)
            pipe.expire(failures_key, NO_ACCOUNT_COUNT_SECONDS)
            count = int(pipe.execute()[0])
        if count < limit:
            return
        with connection.pipeline() as pipe:
            pipe.set(locked_key, "1", ex=lockout_seconds)
            pipe.delete(failures_key)  # the lock's end starts a new count, as an account's does
            pipe.execute()
    except RedisError:
        log.warning("Redis unavailable: failed sign-ins to emails without an account are not counted")
        return
    log.warning("sign-ins locked for an email without an account after %d failures", count)
    raise _locked_for(lockout_seconds - 1)  # as an account's, whose lock began a moment ago
