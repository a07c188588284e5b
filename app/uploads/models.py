"""Uploaded files: one row per upload; the bytes live in storage under keys made from its id."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, TimestampMixin

FILENAME_MAX = 255
CONTENT_TYPE_MAX = 100
FAILURE_REASON_MAX = 500


class Purpose(enum.StrEnum):
    PRODUCT_IMAGE = "product_image"
    IMPORT = "import"
    EXPORT = "export"  # written by the API only


class Status(enum.StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class Variant(enum.StrEnum):
    """The objects stored for one upload (``<upload id>/<variant>``)."""

    INCOMING = "incoming"  # a direct upload's target, writable by the client until it expires
    FILE = "file"  # the received bytes, once checked; the content of imports and exports
    IMAGE = "image"  # a product image, decoded and re-encoded without metadata
    SMALL = "small"  # thumbnails of a product image
    MEDIUM = "medium"


THUMBNAILS = (Variant.SMALL, Variant.MEDIUM)
CLIENT_PURPOSES = (Purpose.PRODUCT_IMAGE, Purpose.IMPORT)


def _known(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Upload(IdMixin, TimestampMixin, Base):
    __tablename__ = "uploads"
    __table_args__ = (
        sa.CheckConstraint(_known("purpose", Purpose), name="purpose_known"),
        sa.CheckConstraint(_known("status", Status), name="status_known"),
        sa.CheckConstraint("size IS NULL OR size >= 0", name="size_non_negative"),
        sa.CheckConstraint("declared_size IS NULL OR declared_size > 0", name="declared_size_positive"),
        # Keyset pairs: the list's order (newest first), overall and per owner.
        sa.Index("ix_uploads_created_at_id", "created_at", "id"),
        sa.Index("ix_uploads_owner_id_created_at_id", "owner_id", "created_at", "id"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(20), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), index=True)
    # The client's name for the file, cleaned: shown and used in Content-Disposition only.
    filename: Mapped[str] = mapped_column(sa.String(FILENAME_MAX))
    # Sniffed from the content (never the client's claim); null until the bytes are checked.
    content_type: Mapped[str | None] = mapped_column(sa.String(CONTENT_TYPE_MAX), default=None)
    # Of the content served (for a product image: the re-encoded file).
    size: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    declared_size: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    width: Mapped[int | None] = mapped_column(default=None)
    height: Mapped[int | None] = mapped_column(default=None)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(FAILURE_REASON_MAX), default=None)
    # Runs of a product image's job that started (committed before each works): one killed
    # outright (the OOM killer) leaves no other trace, and the upkeep stops relaying at a cap.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    completed_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def content_variant(self) -> Variant:
        return Variant.IMAGE if self.purpose == Purpose.PRODUCT_IMAGE else Variant.FILE

    @property
    def is_public(self) -> bool:
        """Product images (and their thumbnails) are readable by anyone once ready."""
        return self.purpose == Purpose.PRODUCT_IMAGE and self.status == Status.READY

    def key(self, variant: Variant) -> str:
        return object_key(self.id, variant)

    def __repr__(self) -> str:
        return f"<Upload {self.id} {self.purpose} {self.status}>"


def object_key(upload_id: uuid.UUID, variant: Variant) -> str:
    # Direct-upload targets live under their own prefix: an object a client sent after its
    # upload was refused has no row to be found by, and a storage lifecycle rule on
    # ``incoming/`` (expire after a day or two) clears it.
    if variant is Variant.INCOMING:
        return f"{variant.value}/{upload_id}"
    return f"{upload_id}/{variant.value}"


def all_keys(upload_id: uuid.UUID) -> list[str]:
    return [object_key(upload_id, variant) for variant in Variant]
