"""Sessions: opening one at login, revoking one or all (helpers only flush)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.auth.models import AuthSession
from app.auth.tokens import TokenPair, issue_pair, new_jti, refresh_expiry
from app.db import db, utcnow
from app.users import service as users_service
from app.users.models import User


@dataclass(frozen=True)
class SessionView:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


def start_session(user: User, *, user_agent: str | None, ip: str | None, expires_at: datetime) -> AuthSession:
    """A new session row (flushes). ``ip`` must be a validated address (app.security.client_ip)."""
    session = AuthSession(
        user_id=user.id,
        current_jti=new_jti(),
        expires_at=expires_at,
        user_agent=(user_agent or None) and user_agent[:255],
        ip=ip,
    )
    db.session.add(session)
    db.session.flush()
    return session


def open_session(user: User, *, user_agent: str | None, ip: str | None) -> TokenPair:
    session = start_session(user, user_agent=user_agent, ip=ip, expires_at=refresh_expiry())
    return issue_pair(user, session, session.current_jti)


def live_sessions() -> sa.ColumnElement[bool]:
    return sa.and_(AuthSession.revoked_at.is_(None), AuthSession.expires_at > utcnow())


def revoke_all(user_id: uuid.UUID, *, keep_session_id: uuid.UUID | None = None) -> int:
    stmt = sa.update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
    if keep_session_id is not None:
        stmt = stmt.where(AuthSession.id != keep_session_id)
    result = db.session.execute(stmt.values(revoked_at=utcnow()).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def _on_sessions_invalidated(user: User, **kwargs: Any) -> None:
    revoke_all(user.id, keep_session_id=kwargs.get("keep_session_id"))


users_service.sessions_invalidated.connect(_on_sessions_invalidated)


def _on_account_deleted(user: User, **kwargs: Any) -> None:
    # Where and on what each device signed in is the person's: gone with the account.
    db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.user_id == user.id)
        .values(ip=None, user_agent=None)
        .execution_options(synchronize_session=False)
    )


users_service.account_deleted.connect(_on_account_deleted)


def purge_ended(before: datetime) -> int:
    """Delete the sessions that ended (revoked, or past their end) before ``before``: their
    device and address served their purpose. A token of such a session is refused as one
    of no session is (``tokens._token_revoked``)."""
    result = db.session.execute(
        sa.delete(AuthSession)
        .where(sa.or_(AuthSession.revoked_at < before, AuthSession.expires_at < before))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
