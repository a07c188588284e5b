"""Test data builders. Users are created directly; tokens through the real token code."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from flask import Flask

from app.auth.models import AuthSession
from app.auth.tokens import issue_pair, new_jti, refresh_expiry
from app.db import db, utcnow
from app.users.models import User
from app.users.passwords import hash_password

DEFAULT_PASSWORD = "Correct-Horse-42"
_counter = itertools.count(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class AuthedUser:
    id: str
    email: str
    password: str
    role: str
    access_token: str
    refresh_token: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def create_user(
    app: Flask,
    *,
    role: str = "customer",
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    full_name: str | None = None,
    verified: bool = True,
    is_active: bool = True,
) -> AuthedUser:
    """A user with a live session and a token pair, as if they had just logged in."""
    n = next(_counter)
    email = (email or f"{role}{n}@example.com").lower()
    with app.app_context():
        user = User(
            email=email,
            password_hash=hash_password(password),
            full_name=full_name or f"{role.title()} {n}",
            role=role,
            is_active=is_active,
            email_verified_at=utcnow() if verified else None,
        )
        db.session.add(user)
        db.session.flush()
        jti = new_jti()
        session = AuthSession(user_id=user.id, current_jti=jti, expires_at=refresh_expiry(), user_agent="pytest")
        db.session.add(session)
        db.session.flush()
        pair = issue_pair(user, session, jti)
        db.session.commit()
        return AuthedUser(
            id=str(user.id),
            email=email,
            password=password,
            role=role,
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            session_id=str(session.id),
        )
