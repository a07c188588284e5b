"""Use cases of uploads once they exist: read, list, serve, delete; and what other domains ask.

Visibility: an upload is its owner's and staff's (``uploads:write``); anyone else gets a
404, never a 403, so that ids reveal nothing. Ready product images are public content.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.db import db
from app.errors import Conflict, InvalidState, NotFound
from app.pagination import Page, SortKey, paginate
from app.permissions import Principal
from app.storage import ReadStream, current_storage
from app.uploads.models import Purpose, Status, Upload, Variant, all_keys
from app.uploads.names import download_name
from app.uploads.permissions import can_read_content, can_see, sees_all

SORTABLE = {"created_at": Upload.created_at}
DEFAULT_SORT = (SortKey("created_at", descending=True),)


def get(*, upload_id: uuid.UUID, viewer: Principal) -> Upload:
    upload = db.session.get(Upload, upload_id)
    if upload is None or not can_see(viewer, upload):
        raise NotFound("Upload not found")
    return upload


def list_(*, args: Mapping[str, Any], viewer: Principal) -> Page[Upload]:
    """The viewer's uploads (staff: everyone's), newest first, filtered by purpose and status."""
    stmt = sa.select(Upload)
    if not sees_all(viewer):
        stmt = stmt.where(Upload.owner_id == viewer.id)
    for name in ("purpose", "status"):
        if name in args:
            stmt = stmt.where(getattr(Upload, name) == args[name])
    return paginate(stmt, args, sortable=SORTABLE, default_sort=DEFAULT_SORT, tiebreak=Upload.id)


def delete(*, upload_id: uuid.UUID, viewer: Principal) -> None:
    """Remove the upload and its stored objects; refused (409) while a product shows it.

    The products table's foreign key decides, so the check holds under concurrency and
    this domain needs to know nothing of products. The row's DELETE runs first (the key
    refuses it while a product shows the upload, and it holds the row meanwhile), then the
    objects go, then the commit: storage that fails is a 503 that leaves the upload as it
    was, for the client to retry (had the row gone first, its objects would be left with
    nothing pointing at them).
    """
    upload = get(upload_id=upload_id, viewer=viewer)
    db.session.delete(upload)
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict("This upload is in use (a product's image); remove it from the product first") from exc
    current_storage().delete(*all_keys(upload_id))  # a 503 rolls the DELETE back
    db.session.commit()


@dataclass(frozen=True)
class Content:
    """What ``GET /uploads/{id}/content`` serves."""

    key: str
    content_type: str
    download_name: str
    inline: bool
    public: bool
    etag: str


def content(*, upload_id: uuid.UUID, variant: str | None, viewer: Principal | None) -> Content:
    upload = db.session.get(Upload, upload_id)
    if upload is None or not can_read_content(viewer, upload):
        raise NotFound("Upload not found")
    if upload.status != Status.READY or upload.content_type is None or upload.sha256 is None:
        raise InvalidState(f"The upload is {upload.status}: it has no content to serve yet")
    is_image = upload.purpose == Purpose.PRODUCT_IMAGE
    if variant is not None and not is_image:
        raise NotFound("Only product images have thumbnails")
    chosen = Variant(variant) if variant else upload.content_variant
    suffix = f"-{chosen.value}" if variant else ""
    return Content(
        key=upload.key(chosen),
        content_type=upload.content_type,
        download_name=download_name(upload.filename, upload.content_type, suffix=suffix),
        inline=is_image,
        public=upload.is_public,
        etag=f"{upload.sha256[:40]}{suffix}",
    )


def open_file(upload: Upload) -> ReadStream:
    """The content of a ready upload, as a stream (an import file, say); the caller closes it."""
    if upload.status != Status.READY:
        raise InvalidState(f"The upload is {upload.status}")
    return current_storage().open(upload.key(upload.content_variant))


def is_ready_product_image(upload_id: uuid.UUID) -> bool:
    """For the catalog: may a product show this upload? (A ready upload of purpose product_image.)"""
    return upload_id in ready_product_images([upload_id])


def ready_product_images(upload_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``upload_ids`` a product may show (``is_ready_product_image``), in one query."""
    if not upload_ids:
        return set()
    found = db.session.scalars(
        sa.select(Upload.id).where(
            Upload.id.in_(set(upload_ids)), Upload.purpose == Purpose.PRODUCT_IMAGE, Upload.status == Status.READY
        )
    )
    return set(found)
