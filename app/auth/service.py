"""Use cases of the auth domain: login, refresh rotation, logout, sessions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from flask import current_app

from app.auth.models import AuthSession
from app.auth.sessions import SessionView, live_sessions, open_session, revoke_all, start_session
from app.auth.tokens import TokenPair, blocklist_token, issue_pair, new_jti, session_end
from app.db import db, utcnow
from app.errors import NotFound, TokenExpired, TokenRevoked, Unauthorized
from app.pagination import Page, SortKey, paginate
from app.permissions import has_permission
from app.users import lockout
from app.users import service as users_service
from app.users.models import User
from app.users.passwords import hash_password, needs_rehash, verify_password

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid email or password"
DASHBOARD_PERMISSION = "jobs:dashboard"


def _authenticate(*, email: str, password: str) -> tuple[User, str]:
    """The account behind ``email`` and ``password``, for every way of signing in, and its
    password hash as this check left it (see ``_still_signing_in``).

    The same answer and the same hashing work for an unknown email and a wrong password,
    and the same lockout: a wrong password counts toward it, and so does any password for
    an email without an account that can sign in (``lockout.check_password``); on success
    the count is cleared, and committed.
    """
    user = users_service.find_by_email(email)
    if user is not None and not user.can_authenticate:
        user = None  # a deactivated account is answered as an unknown email
    if user is None:
        verify_password(None, password)  # the work a wrong password costs
        db.session.rollback()
        lockout.record_failure_without_account(email)  # 423 as for an account, or nothing
        raise Unauthorized(INVALID_CREDENTIALS)
    if not lockout.check_password(user, password):  # 423 while locked
        raise Unauthorized(INVALID_CREDENTIALS)
    checked: str = user.password_hash  # the hash the password was checked against
    if needs_rehash(checked):
        # Only over the hash just checked: a password changed meanwhile is not undone.
        rehashed = hash_password(password)
        result = db.session.execute(
            sa.update(User)
            .where(User.id == user.id, User.password_hash == checked)
            .values(password_hash=rehashed, updated_at=User.updated_at)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            checked = rehashed
    db.session.commit()  # whatever the caller does next, this check succeeded
    return user, checked


def _still_signing_in(user: User, checked: str, *, permission: str | None = None) -> User:
    """``user`` locked (``users.service.lock_account``) and as it was when its password
    was checked: the same password (not changed or reset meanwhile), able to sign in (not
    deactivated), with ``permission`` (not demoted). A session opened under this lock is
    ended by a change committed after it; a change committed before is seen here."""
    locked = users_service.lock_account(user.id)
    if (
        locked is None
        or locked.password_hash != checked
        or not locked.can_authenticate
        or (permission is not None and not has_permission(locked, permission))
    ):
        db.session.rollback()
        raise Unauthorized(INVALID_CREDENTIALS)
    return locked


def login(*, email: str, password: str, user_agent: str | None, ip: str | None) -> TokenPair:
    """Exchange credentials for a token pair and a new session."""
    user, checked = _authenticate(email=email, password=password)
    user = _still_signing_in(user, checked)
    pair = open_session(user, user_agent=user_agent, ip=ip)
    db.session.commit()
    return pair


def dashboard_login(*, email: str, password: str, user_agent: str | None, ip: str | None) -> AuthSession:
    """Sign in to the job dashboard: the login above, then a short session for the cookie.

    An account without the dashboard permission gets the answer of a wrong password.
    """
    user, checked = _authenticate(email=email, password=password)
    if not has_permission(user, DASHBOARD_PERMISSION):
        db.session.rollback()
        raise Unauthorized(INVALID_CREDENTIALS)
    user = _still_signing_in(user, checked, permission=DASHBOARD_PERMISSION)
    lifetime = timedelta(seconds=int(current_app.config["ADMIN_SESSION_SECONDS"]))
    session = start_session(user, user_agent=user_agent, ip=ip, expires_at=utcnow() + lifetime)
    db.session.commit()
    return session


def dashboard_user(*, session_id: uuid.UUID) -> User | None:
    """The admin behind a live dashboard session, or None (revoked, expired, demoted, gone)."""
    row = db.session.execute(
        sa.select(User)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.id == session_id, live_sessions())
    ).scalar_one_or_none()
    if row is None or not row.can_authenticate or not has_permission(row, DASHBOARD_PERMISSION):
        return None
    return row


def end_session(*, session_id: uuid.UUID) -> None:
    db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def refresh(*, claims: Mapping[str, Any], user_agent: str | None, ip: str | None) -> TokenPair:
    """Rotate: spend the presented refresh token, issue a new pair, and move the session's
    end to ``JWT_REFRESH_TOKEN_SECONDS`` from now (an idle timeout), never past
    ``SESSION_MAX_SECONDS`` after the login.

    The token the last rotation spent, presented again within
    ``REFRESH_REUSE_GRACE_SECONDS`` of it, is a client that never got that rotation's answer
    (or a second thread of it that lost the race): it gets the session's current refresh
    token again and a fresh access token, and nothing changes. Any other token that is not
    the session's current one was spent before (stolen or replayed): the whole session is
    revoked.

    Race-safe without locks: the rotation is an UPDATE conditional on the presented jti, so
    of two refreshes with one token one rotates; on PostgreSQL the other's UPDATE waits for
    the first to commit and matches nothing, and its read (a statement of its own) then sees
    that rotation and gets the grace.
    """
    session_id = uuid.UUID(str(claims["sid"]))
    presented = str(claims["jti"])
    now = utcnow()
    rotated = new_jti()
    idle_end = now + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    started = db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.current_jti == presented, live_sessions())
        .values(
            current_jti=rotated,
            previous_jti=presented,
            rotated_at=now,
            last_used_at=now,
            expires_at=idle_end,
            user_agent=user_agent and user_agent[:255],
            ip=ip,
        )
        .returning(AuthSession.created_at)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if started is not None:
        _cap_session(session_id, started=started, now=now, idle_end=idle_end)
        session = db.session.get(AuthSession, session_id, populate_existing=True)
    else:
        session = _spent_within_grace(session_id, presented, now)
        if session is None:
            _revoke_on_reuse(session_id)
        log.info("refresh token re-presented within the grace: session %s keeps its current token", session_id)
    user = db.session.get(User, uuid.UUID(str(claims["sub"])))
    assert session is not None and user is not None
    pair = issue_pair(user, session, session.current_jti)
    db.session.commit()
    return pair


def _cap_session(session_id: uuid.UUID, *, started: datetime, now: datetime, idle_end: datetime) -> None:
    """A rotation moved the session's end to ``idle_end``: no later than its absolute end
    (``SESSION_MAX_SECONDS`` after the login). A session already past it (the setting was
    lowered) ends now, as an expired one."""
    ends = session_end(started=started, now=now)
    if ends >= idle_end:
        return
    db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == session_id)
        .values(expires_at=ends)
        .execution_options(synchronize_session=False)
    )
    if ends <= now:
        db.session.commit()
        raise TokenExpired("This session has reached its maximum lifetime; sign in again")


def _spent_within_grace(session_id: uuid.UUID, presented: str, now: datetime) -> AuthSession | None:
    """The live session whose last rotation spent ``presented`` less than the grace ago."""
    grace = int(current_app.config["REFRESH_REUSE_GRACE_SECONDS"])
    if grace <= 0:
        return None
    session: AuthSession | None = db.session.execute(
        sa.select(AuthSession)
        .where(
            AuthSession.id == session_id,
            AuthSession.previous_jti == presented,
            AuthSession.rotated_at > now - timedelta(seconds=grace),
            live_sessions(),
        )
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return session


def _revoke_on_reuse(session_id: uuid.UUID) -> NoReturn:
    end_session(session_id=session_id)
    log.warning("refresh token reuse: session %s revoked", session_id)
    raise TokenRevoked("This refresh token was already used; the session has been revoked")


def logout(*, user_id: uuid.UUID, claims: Mapping[str, Any]) -> None:
    """Revoke the calling access token and its session."""
    blocklist_token(str(claims["jti"]), int(claims["exp"]))
    db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == uuid.UUID(str(claims["sid"])), AuthSession.user_id == user_id)
        .values(revoked_at=sa.func.coalesce(AuthSession.revoked_at, utcnow()))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def logout_all(*, user_id: uuid.UUID, claims: Mapping[str, Any]) -> None:
    blocklist_token(str(claims["jti"]), int(claims["exp"]))
    revoke_all(user_id)
    db.session.commit()


def list_sessions(*, user_id: uuid.UUID, current_session_id: uuid.UUID, args: Mapping[str, Any]) -> Page[SessionView]:
    stmt = sa.select(AuthSession).where(AuthSession.user_id == user_id, live_sessions())
    page = paginate(
        stmt,
        args,
        sortable={"last_used_at": AuthSession.last_used_at},
        default_sort=[SortKey("last_used_at", True)],
        tiebreak=AuthSession.id,
    )
    views = [
        SessionView(s.id, s.created_at, s.last_used_at, s.user_agent, s.ip, s.id == current_session_id)
        for s in page.items
    ]
    return Page(items=views, meta=page.meta, links=page.links)


def revoke_session(*, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
    result = db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.user_id == user_id, live_sessions())
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        db.session.rollback()
        raise NotFound("Session not found")
    db.session.commit()
