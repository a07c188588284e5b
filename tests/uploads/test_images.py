"""Product images: decoded with Pillow, re-encoded clean, thumbnailed; bombs and junk end failed."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import ExifTags, Image

from app.storage import Storage
from app.uploads import processing
from app.uploads.models import Variant, object_key
from tests.factories import AuthedUser
from tests.support.processes import ROOT
from tests.uploads.support import (
    UPLOADS,
    created,
    fetch_content,
    get_upload,
    huge_one_bit_png,
    image_bytes,
    jpeg_with_gps_and_rotation,
    png,
    post_upload,
    rows,
    settle,
    stored,
)


def _upload_image(
    client: FlaskClient, staff: AuthedUser, content: bytes, run_jobs: Callable[[], int], name: str = "p.png"
) -> dict[str, object]:
    upload = created(post_upload(client, staff, content, name, "product_image"))
    settle(run_jobs)
    return get_upload(client, staff, str(upload["id"]))


def test_a_400_megapixel_png_ends_failed_and_nothing_is_kept(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    bomb = huge_one_bit_png()
    assert len(bomb) < 1024 * 1024  # small on the wire: the danger is in decoding it
    upload = _upload_image(client, staff, bomb, run_jobs)
    assert upload["status"] == "failed"
    assert "megapixels" in str(upload["failure_reason"])
    assert upload["url"] is None and upload["width"] is None
    assert stored(storage) == []
    assert client.get(f"{UPLOADS}/{upload['id']}/content", headers=staff.headers).status_code == 409


def test_gps_and_every_other_exif_tag_are_gone_and_the_orientation_is_applied(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    original = jpeg_with_gps_and_rotation()
    with Image.open(io.BytesIO(original)) as sent:  # the test file does carry them
        assert sent.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
    upload = _upload_image(client, staff, original, run_jobs, "holiday.jpg")
    assert upload["status"] == "ready" and upload["content_type"] == "image/jpeg"
    assert (upload["width"], upload["height"]) == (20, 40)  # rotated as its EXIF said

    for variant in (None, "small", "medium"):
        query = {"variant": variant} if variant else {}
        status, served, headers = fetch_content(app, client, str(upload["url"]), **query)
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(served)) as image:
            assert image.format == "JPEG" and image.size == (20, 40)
            assert len(image.getexif()) == 0 and "exif" not in image.info
        assert b"Exif" not in served and b"SpyCam" not in served


def test_anything_after_the_image_data_is_destroyed(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    polyglot = png(32, 32) + b"<html><script>alert(document.domain)</script></html>"
    upload = _upload_image(client, staff, polyglot, run_jobs)
    assert upload["status"] == "ready"
    _, served, headers = fetch_content(app, client, str(upload["url"]))
    assert b"<script>" not in served
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_thumbnails_fit_their_box_and_keep_the_aspect(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    upload = _upload_image(client, staff, png(2000, 1000), run_jobs)
    sizes = {}
    for variant in ("small", "medium"):
        status, served, headers = fetch_content(app, client, str(upload["url"]), variant=variant)
        assert status == 200 and headers["Content-Disposition"].startswith("inline;")
        with Image.open(io.BytesIO(served)) as image:
            sizes[variant] = image.size
    assert sizes == {"small": (256, 128), "medium": (1024, 512)}
    assert client.get(f"{UPLOADS}/{upload['id']}/content?variant=large").status_code == 422


@pytest.mark.parametrize(
    ("image_format", "content_type"), [("GIF", "image/gif"), ("WEBP", "image/webp"), ("PNG", "image/png")]
)
def test_each_allowed_format_is_kept_in_its_format(
    app: Flask,
    client: FlaskClient,
    file_storage: Storage,
    staff: AuthedUser,
    run_jobs: Callable[[], int],
    image_format: str,
    content_type: str,
) -> None:
    upload = _upload_image(client, staff, image_bytes(image_format), run_jobs)
    assert (upload["status"], upload["content_type"], upload["width"]) == ("ready", content_type, 120)
    _, served, _ = fetch_content(app, client, str(upload["url"]))
    with Image.open(io.BytesIO(served)) as image:
        assert image.format == image_format


def test_a_file_that_only_starts_like_a_png_ends_failed(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    truncated = png(400, 400, mode="RGB", color=None)[:300]
    upload = _upload_image(client, staff, truncated, run_jobs)
    assert upload["status"] == "failed" and "could not be decoded" in str(upload["failure_reason"])
    assert stored(file_storage) == []


def test_a_png_cut_short_and_padded_with_zeros_ends_failed(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    """Pillow decodes it without an error (zlib stops where the zeros begin): it was ready,
    its lower half black. Its chunks' CRCs tell."""
    whole = png(800, 600)
    damaged = whole[: len(whole) // 2] + bytes(5000)
    upload = _upload_image(client, staff, damaged, run_jobs)
    assert upload["status"] == "failed" and "damaged or incomplete" in str(upload["failure_reason"])
    assert stored(file_storage) == []


# In a fresh process: how far processing one file takes its peak RSS, in bytes.
_PEAK_OF_PROCESSING = """
import resource, sys
from app.uploads import images
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images.process(data)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_a_40_megapixel_rgba_png_is_processed_with_at_most_three_full_size_copies(tmp_path: Path) -> None:
    """A few hundred KB on the wire, 160 MB a copy decoded: the job held five copies at once
    (about 810 MB above the process's start: a worker killed by the OOM killer); now about two."""
    side = 6300
    path = tmp_path / "big.png"
    Image.new("RGBA", (side, side), (10, 120, 200, 255)).save(path, "PNG")
    assert path.stat().st_size < 1024 * 1024
    run = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_PROCESSING, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    copy = side * side * 4
    assert int(run.stdout) < 3 * copy, f"{int(run.stdout) / copy:.1f} full-size copies"


def test_the_job_is_idempotent(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    upload = _upload_image(client, staff, png(50, 50), run_jobs)
    upload_id = uuid.UUID(str(upload["id"]))
    before = {key: storage.read_range(key, 0, 1 << 20) for key in stored(storage)}
    with app.app_context():
        # Again after success (a retry of a run that died after its commit): it only tidies.
        storage.put_bytes(object_key(upload_id, Variant.FILE), b"left over")
        assert processing.process_image(upload_id) == "ready"
        assert processing.process_image(uuid.uuid4()) == "gone"
    assert {key: storage.read_range(key, 0, 1 << 20) for key in stored(storage)} == before
    assert get_upload(client, staff, str(upload_id))["sha256"] == upload["sha256"]


def test_an_image_deleted_while_processing_leaves_nothing(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    with app.app_context():
        from app.extensions import redis_queues

        queue = redis_queues.queue("media")
        saved = queue._is_async
        queue._is_async = True  # hold the job back, as a busy worker would
    try:
        upload = created(post_upload(client, staff, png(), "p.png", "product_image"))
        assert upload["status"] == "processing"
        assert client.delete(f"{UPLOADS}/{upload['id']}", headers=staff.headers).status_code == 204
    finally:
        queue._is_async = saved
    run_jobs()
    with app.app_context():
        assert processing.process_image(uuid.UUID(upload["id"])) == "gone"
    assert stored(file_storage) == [] and rows(app) == []


def test_conditions_are_answered_before_the_bytes_or_the_redirect_on_every_storage(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    """On S3 the content is a 302 to a presigned URL: a stale If-Match was redirected as well,
    and If-None-Match never got its 304, though the document declares both."""
    upload = _upload_image(client, staff, png(40, 30), run_jobs)
    url = f"{UPLOADS}/{upload['id']}/content"
    refused = client.get(url, headers={"If-Match": '"nope"'})
    assert refused.status_code == 412 and refused.json["error"]["code"] == "PRECONDITION_FAILED"
    etag = refused.headers["ETag"]  # the file's own, as the 412's document says it may carry
    assert client.get(url, headers={"If-Match": etag}).status_code in (200, 302)
    for held in (etag, f"W/{etag}", "*"):
        unchanged = client.get(url, headers={"If-None-Match": held})
        assert unchanged.status_code == 304 and unchanged.data == b"" and unchanged.headers["ETag"] == etag, held
        assert unchanged.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(url, headers={"If-None-Match": '"another"'}).status_code in (200, 302)


def test_an_images_content_answers_conditions_with_a_304_or_a_412_envelope_never_the_file(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    upload = _upload_image(client, staff, png(40, 30), run_jobs)
    url = f"{UPLOADS}/{upload['id']}/content"
    first = client.get(url)
    assert first.status_code == 200 and first.data.startswith(b"\x89PNG")
    etag = first.headers["ETag"]
    assert first.headers["Content-Disposition"].startswith("inline")
    assert "Accept-Ranges" not in first.headers  # no byte ranges are served: none are offered

    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert client.get(url, headers={"If-None-Match": '"another"'}).status_code == 200

    # A failed If-Match was a 412 carrying the image, with a day of public caching.
    refused = client.get(url, headers={"If-Match": '"nope"'})
    assert refused.status_code == 412
    assert refused.json["error"]["code"] == "PRECONDITION_FAILED"
    assert "public" not in refused.headers.get("Cache-Control", "")
    assert client.get(url, headers={"If-Match": etag}).status_code == 200
    assert client.get(url, headers={"If-Match": "*"}).status_code == 200
