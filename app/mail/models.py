"""The mail outbox: written in the same transaction as the change that causes the mail."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, TimestampMixin


class OutboxMail(IdMixin, TimestampMixin, Base):
    __tablename__ = "mail_outbox"
    __table_args__ = (sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),)

    to_address: Mapped[str] = mapped_column(sa.String(254))
    template: Mapped[str] = mapped_column(sa.String(64))
    subject: Mapped[str] = mapped_column(sa.String(255))
    text_body: Mapped[str] = mapped_column(sa.Text)
    html_body: Mapped[str | None] = mapped_column(sa.Text)
    # Bodies that carry a one-time token: sealed at rest, redacted once delivered.
    sensitive: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Unsent rows are what the relay scans; the partial-free index keeps that cheap.
    sent_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # Set when every attempt has failed: the relay leaves the row alone, an operator decides.
    failed_at: Mapped[datetime | None] = mapped_column(default=None)
