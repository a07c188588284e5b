"""Files to upload (real images, spoofed ones), and what a client or an operator can check."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import IO, Any

import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from PIL import ExifTags, Image
from werkzeug.test import TestResponse

from app.db import db
from app.storage import Storage
from app.uploads.models import Upload
from tests.conftest import SERVED_BASE_URL, json_of
from tests.factories import AuthedUser

UPLOADS = "/api/v1/uploads"


def png(width: int = 300, height: int = 200, *, mode: str = "RGB", color: Any = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def image_bytes(image_format: str, width: int = 120, height: int = 80, **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, image_format, **save)
    return buffer.getvalue()


def jpeg_with_gps_and_rotation() -> bytes:
    """A 40x20 JPEG whose EXIF says: taken at 48°51'N 2°21'E, display rotated (orientation 6)."""
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = image.getexif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "SpyCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 21.0, 8.0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def huge_one_bit_png(side: int = 20_000) -> bytes:
    """A decompression bomb: 400 megapixels of nothing, a few tens of KiB on disk."""
    buffer = io.BytesIO()
    Image.new("1", (side, side), 0).save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def elf_binary() -> bytes:
    with open("/bin/true", "rb") as handle:
        return handle.read(64 * 1024)


def zip_archive() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("products.csv", "sku,name,price\nA-1,Mug,9.99\n")
    return buffer.getvalue()


CSV = b"sku,name,price\nMUG-1,Mug,9.99\nLAMP-2,Lamp,19.99\n"
JSON_ARRAY = b'[{"sku": "MUG-1", "name": "Mug", "price": "9.99"}]'
HTML = b"<!DOCTYPE html><html><head><title>x</title></head><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'


def post_upload(
    client: FlaskClient, user: AuthedUser | None, content: bytes | IO[bytes], filename: str, purpose: str | None
) -> TestResponse:
    """``POST /uploads`` as a browser form would send it (purpose first, then the file)."""
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    data: dict[str, Any] = {} if purpose is None else {"purpose": purpose}
    data["file"] = (stream, filename, "application/octet-stream")
    return client.post(UPLOADS, data=data, headers=user.headers if user else {}, content_type="multipart/form-data")


def multipart_body(parts: list[tuple[str, bytes, str | None]], boundary: str = "b0und4ry") -> tuple[bytes, str]:
    """A multipart body with parts in exactly this order: (name, value, filename or None)."""
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def created(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = json_of(response)["data"]
    return data


def get_upload(client: FlaskClient, user: AuthedUser, upload_id: str) -> dict[str, Any]:
    response = client.get(f"{UPLOADS}/{upload_id}", headers=user.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    data: dict[str, Any] = json_of(response)["data"]
    return data


def settle(run_jobs: Callable[[], int]) -> None:
    """Let the media job run (a real worker in the services run; in-process it already ran)."""
    run_jobs()


def rows(app: Flask) -> list[Upload]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(Upload)))
        db.session.expunge_all()
        return found


def stored(storage: Storage) -> list[str]:
    return sorted(storage.keys())


def nothing_kept(app: Flask, storage: Storage) -> None:
    assert stored(storage) == []
    assert rows(app) == []


def local_path(app: Flask, url: str) -> str:
    assert url.startswith(SERVED_BASE_URL), url
    return url.removeprefix(SERVED_BASE_URL)


def fetch_content(
    app: Flask, client: FlaskClient, url: str, user: AuthedUser | None = None, **query: str
) -> tuple[int, bytes, dict[str, str]]:
    """Read an upload's content as a client does: follow the 302 to storage, if there is one.
    Returns the status, the bytes and the headers of the API's answer merged with storage's."""
    response = client.get(local_path(app, url), headers=user.headers if user else {}, query_string=query or None)
    headers = dict(response.headers)
    if response.status_code != 302:
        return response.status_code, response.get_data(), headers
    stored_response = requests.get(response.headers["Location"], timeout=10)
    headers.update({k.title(): v for k, v in stored_response.headers.items()})
    return stored_response.status_code, stored_response.content, headers


def send_to_target(app: Flask, client: FlaskClient, target: dict[str, Any], content: bytes) -> int:
    """POST the file to a direct upload's target as a client does: its fields, then the file."""
    if target["url"].startswith(SERVED_BASE_URL):
        data: dict[str, Any] = dict(target["fields"])
        data["file"] = (io.BytesIO(content), "file.bin", "application/octet-stream")
        response = client.post(local_path(app, target["url"]), data=data, content_type="multipart/form-data")
        return response.status_code
    answer = requests.post(target["url"], data=target["fields"], files={"file": ("file.bin", content)}, timeout=30)
    return answer.status_code


def start_direct(
    client: FlaskClient, user: AuthedUser, *, purpose: str, size: int, filename: str = "file.bin"
) -> TestResponse:
    body = {"purpose": purpose, "filename": filename, "size": size, "content_type": "application/octet-stream"}
    return client.post(f"{UPLOADS}/direct", json=body, headers=user.headers)


def new_uuid() -> str:
    return str(uuid.uuid4())
