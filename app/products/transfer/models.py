"""Bulk imports and exports: one row per run, read by the API (never RQ's job state).

An import's ``processed_rows`` is its checkpoint: it is committed in the same transaction
as each batch it covers, so a run that dies resumes after the last committed batch. Its
rejected rows are ``ProductImportError`` rows, written in the same transactions.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, TimestampMixin

FAILURE_REASON_MAX = 500
MESSAGE_MAX = 500
FIELD_MAX = 64
SKU_TEXT_MAX = 200  # as the file gave it (possibly invalid), cut to this length
FILENAME_MAX = 255


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED)


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class ProductImport(IdMixin, TimestampMixin, Base):
    __tablename__ = "product_imports"
    __table_args__ = (
        sa.CheckConstraint(_known("status", tuple(RunStatus)), name="status_known"),
        sa.CheckConstraint(_known("mode", ("upsert", "create")), name="mode_known"),
        sa.CheckConstraint(_known("error_policy", ("skip_invalid_rows", "reject_all")), name="error_policy_known"),
        sa.CheckConstraint(
            "processed_rows >= 0 AND created >= 0 AND updated >= 0 AND unchanged >= 0 AND failed >= 0",
            name="counts_non_negative",
        ),
        # Keyset pair: the list's order (newest first).
        sa.Index("ix_product_imports_created_at_id", "created_at", "id"),
    )

    # The import file (an upload of purpose ``import``); null for a file given to the
    # command line, or once the upload was deleted.
    upload_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("uploads.id", ondelete="SET NULL"), default=None, index=True
    )
    filename: Mapped[str] = mapped_column(sa.String(FILENAME_MAX))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    mode: Mapped[str] = mapped_column(sa.String(20))
    dry_run: Mapped[bool] = mapped_column(default=False)
    error_policy: Mapped[str] = mapped_column(sa.String(20))
    status: Mapped[str] = mapped_column(sa.String(20), default=RunStatus.QUEUED, index=True)
    total_rows: Mapped[int | None] = mapped_column(default=None)
    processed_rows: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(FAILURE_REASON_MAX), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def from_command_line(self) -> bool:
        """Started by ``flask import-products``, which runs it in its own process on a local
        file: no upload, no requester. (An import of the API always has a requester: accounts
        are only ever soft-deleted, so ``requested_by_id`` stays; its upload may be deleted.)
        No worker can run it: its file is on the command's machine."""
        return self.upload_id is None and self.requested_by_id is None

    def __repr__(self) -> str:
        return f"<ProductImport {self.id} {self.status} {self.processed_rows}/{self.total_rows}>"


class ProductImportError(Base):
    """One rejected row (a row with several bad cells has several)."""

    __tablename__ = "product_import_errors"
    __table_args__ = (sa.Index("ix_product_import_errors_import_id_row", "import_id", "row", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    import_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("product_imports.id", ondelete="CASCADE"))
    row: Mapped[int]
    sku: Mapped[str | None] = mapped_column(sa.String(SKU_TEXT_MAX), default=None)
    field: Mapped[str] = mapped_column(sa.String(FIELD_MAX))
    message: Mapped[str] = mapped_column(sa.String(MESSAGE_MAX))


class ProductExport(IdMixin, TimestampMixin, Base):
    __tablename__ = "product_exports"
    __table_args__ = (
        sa.CheckConstraint(_known("status", tuple(RunStatus)), name="status_known"),
        sa.CheckConstraint(_known("format", ("csv", "json")), name="format_known"),
    )

    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    format: Mapped[str] = mapped_column(sa.String(10))
    # The list filters of GET /products it was asked with (as sent, validated).
    filters: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(20), default=RunStatus.QUEUED, index=True)
    total_rows: Mapped[int | None] = mapped_column(default=None)
    upload_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("uploads.id", ondelete="SET NULL"), default=None, index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(FAILURE_REASON_MAX), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
