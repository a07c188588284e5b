"""Uploads are streamed: the request is never held whole in memory, on the way in or when
its limit is enforced (Python's own allocations are traced while the request runs)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.storage import S3_PART_SIZE, S3Storage, Storage
from tests.factories import AuthedUser
from tests.uploads.support import created, nothing_kept, png, post_upload, rows, stored

MiB = 1024 * 1024


def _csv_file(path: Path, size: int) -> Path:
    # Long rows: few Python objects per MiB, so that tracing the parse stays quick.
    row = b"SKU-000000,A sturdy product," + b"x" * 60_000 + b",19.99\n"
    with path.open("wb") as handle:
        handle.write(b"sku,name,price\n")
        while handle.tell() + len(row) <= size:
            handle.write(row)
        handle.write(b"\n" * (size - handle.tell()))
    return path


@pytest.fixture
def traced() -> Iterator[Callable[[], int]]:
    """``traced()`` starts measuring (call it right before the request), then tells the peak."""
    tracemalloc.start()
    started = False

    def measure() -> int:
        nonlocal started
        if not started:
            started = True
            tracemalloc.reset_peak()
            return 0
        return tracemalloc.get_traced_memory()[1]

    yield measure
    tracemalloc.stop()


def _budget(storage: Storage) -> int:
    # On S3 a multipart part is buffered before it is sent (and copied once); on disk, chunks.
    return 3 * S3_PART_SIZE + 2 * MiB if isinstance(storage, S3Storage) else 2 * MiB


def test_a_file_larger_than_memory_allows_is_streamed_through(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, tmp_path: Path, traced: Callable[[], int]
) -> None:
    size = 36 * MiB  # twice what the S3 path holds at most; 18 times the file path
    path = _csv_file(tmp_path / "catalog.csv", size)
    with path.open("rb") as handle:
        traced()
        upload = created(post_upload(client, staff, handle, "catalog.csv", "import"))
    peak = traced()
    print(f"peak {peak / MiB:.1f} MiB for a {size / MiB:.0f} MiB upload on {type(storage).__name__}")
    assert upload["size"] == size and upload["status"] == "ready"
    assert storage.size(f"{upload['id']}/file") == size
    assert peak < _budget(storage), f"peak {peak / MiB:.1f} MiB for a {size / MiB:.0f} MiB upload"


def test_the_limit_is_enforced_while_streaming_and_the_partial_object_removed(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, tmp_path: Path, traced: Callable[[], int]
) -> None:
    # 40 MiB sent as an image (limit 10 MiB): the body is let in (the largest limit is for
    # imports), the file is stopped at 10 MiB and a byte.
    path = tmp_path / "big.png"
    with path.open("wb") as handle:
        handle.write(png(8, 8))
        for _ in range(40):
            handle.write(bytes(MiB))
    with path.open("rb") as handle:
        traced()
        response = post_upload(client, staff, handle, "big.png", "product_image")
    peak = traced()
    print(f"peak {peak / MiB:.1f} MiB refusing a 40 MiB image on {type(storage).__name__}")
    assert response.status_code == 413
    nothing_kept(app, storage)
    if isinstance(storage, S3Storage):  # the multipart upload was aborted, not left dangling
        assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    assert peak < _budget(storage), f"peak {peak / MiB:.1f} MiB"


def test_a_body_over_the_largest_limit_is_refused_before_it_is_read(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, tmp_path: Path
) -> None:
    path = _csv_file(tmp_path / "huge.csv", 51 * MiB)
    handle: IO[bytes]
    with path.open("rb") as handle:
        response = post_upload(client, staff, handle, "huge.csv", "import")
    assert response.status_code == 413
    assert stored(file_storage) == [] and rows(app) == []
