"""Where an upload's content is served. Used by the catalog for ``image_url`` and ``thumbnails``."""

from __future__ import annotations

import uuid

from app.uploads.models import THUMBNAILS, Variant
from app.urls import public_url

URL_PREFIX = "/api/v1/uploads"


def upload_path(upload_id: uuid.UUID) -> str:
    return f"{URL_PREFIX}/{upload_id}"


def content_url(upload_id: uuid.UUID, variant: Variant | None = None) -> str:
    """The absolute URL of an upload's content (``PUBLIC_BASE_URL``: never the request's Host,
    so that no client can make the API hand out links to another host)."""
    url = public_url(f"{upload_path(upload_id)}/content")
    return f"{url}?variant={variant.value}" if variant is not None else url


def thumbnail_urls(upload_id: uuid.UUID) -> dict[str, str]:
    return {variant.value: content_url(upload_id, variant) for variant in THUMBNAILS}
