"""Sessions (refresh-token families) and single-use account tokens."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, utcnow


class AuthSession(IdMixin, Base):
    """One login: a family of refresh tokens, of which only ``current_jti`` is live.

    ``previous_jti`` is the token the last rotation (at ``rotated_at``) spent: presented
    again within ``REFRESH_REUSE_GRACE_SECONDS`` it gets the current token again (its
    client lost the answer, or lost a race with itself). A refresh presenting any other jti
    of the family is a replay of a spent token: the whole family is revoked.
    """

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    current_jti: Mapped[str] = mapped_column(sa.String(64), unique=True)
    previous_jti: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    rotated_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    user_agent: Mapped[str | None] = mapped_column(sa.String(255))
    ip: Mapped[str | None] = mapped_column(sa.String(45))

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and self.expires_at > utcnow()


class TokenPurpose(enum.StrEnum):  # values are token kinds, not secrets
    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105  (a token kind, not a secret)


class AccountToken(IdMixin, Base):
    """An emailed single-use token; only its SHA-256 is stored."""

    __tablename__ = "account_tokens"
    __table_args__ = (sa.CheckConstraint("purpose IN ('verify_email', 'password_reset')", name="purpose_known"),)

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(32))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
