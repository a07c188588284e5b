"""The user account."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, SoftDeleteMixin, TimestampMixin
from app.permissions import Role

ROLES = tuple(r.value for r in Role)


class User(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role_known"),
        sa.CheckConstraint("failed_login_count >= 0", name="failed_login_count_non_negative"),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    full_name: Mapped[str] = mapped_column(sa.String(120))
    role: Mapped[str] = mapped_column(sa.String(16), default=Role.CUSTOMER.value, index=True)
    is_active: Mapped[bool] = mapped_column(default=True, index=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(default=None)
    failed_login_count: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def can_authenticate(self) -> bool:
        return self.is_active and self.deleted_at is None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"
