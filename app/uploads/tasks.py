"""RQ jobs of the uploads domain (the ``media`` queue)."""

from __future__ import annotations

import uuid

from app.jobs import task
from app.uploads import processing


@task
def process_image(upload_id: str) -> str:
    """Decode, check and re-encode a product image and make its thumbnails."""
    return processing.process_image(uuid.UUID(upload_id))


@task
def maintain_uploads() -> dict[str, int]:
    """Periodic: purge uploads never completed, fail or relay stuck images, sweep partial files."""
    return processing.maintain()
