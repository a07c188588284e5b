"""``POST /uploads``: files streamed to storage, sniffed, and refused with nothing kept."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.storage import Storage
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.uploads.support import (
    CSV,
    HTML,
    JSON_ARRAY,
    SVG,
    UPLOADS,
    created,
    elf_binary,
    fetch_content,
    get_upload,
    multipart_body,
    nothing_kept,
    png,
    post_upload,
    rows,
    settle,
    stored,
    zip_archive,
)


def test_a_product_image_is_stored_processed_and_served_inline(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    response = post_upload(client, staff, png(300, 200), "red square.png", "product_image")
    upload = created(response)
    assert response.headers["Location"] == f"{UPLOADS}/{upload['id']}"
    assert upload["purpose"] == "product_image" and upload["status"] in {"processing", "ready"}
    assert upload["content_type"] == "image/png" and upload["filename"] == "red square.png"
    settle(run_jobs)
    upload = get_upload(client, staff, upload["id"])
    assert upload["status"] == "ready" and (upload["width"], upload["height"]) == (300, 200)
    assert upload["failure_reason"] is None

    status, body, headers = fetch_content(app, client, upload["url"])  # anyone may read a product image
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == upload["sha256"] and len(body) == upload["size"]
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"].startswith("inline;")
    # The received file is gone once processed: only the clean image and its thumbnails remain.
    assert stored(storage) == sorted(f"{upload['id']}/{v}" for v in ("image", "small", "medium"))


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(CSV, "text/csv"), (b"\xef\xbb\xbf" + CSV, "text/csv"), (JSON_ARRAY, "application/json")],
)
def test_an_import_file_is_ready_at_once_and_only_for_its_owner_and_staff(
    app: Flask,
    client: FlaskClient,
    storage: Storage,
    staff: AuthedUser,
    other_staff: AuthedUser,
    customer: AuthedUser,
    content: bytes,
    content_type: str,
) -> None:
    upload = created(post_upload(client, staff, content, "catalog.csv", "import"))
    assert upload["status"] == "ready" and upload["content_type"] == content_type
    assert upload["size"] == len(content) and upload["sha256"] == hashlib.sha256(content).hexdigest()

    status, body, headers = fetch_content(app, client, upload["url"], staff)
    assert (status, body) == (200, content)
    assert headers["Content-Type"].startswith(content_type)
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers.get("Content-Security-Policy", "default-src 'none'; sandbox") == "default-src 'none'; sandbox"
    assert fetch_content(app, client, upload["url"], other_staff)[0] == 200  # staff see every upload

    # Another user's import file: as if it did not exist.
    assert fetch_content(app, client, upload["url"], customer)[0] == 404
    assert fetch_content(app, client, upload["url"])[0] == 404
    assert client.get(f"{UPLOADS}/{upload['id']}", headers=customer.headers).status_code == 404
    assert client.delete(f"{UPLOADS}/{upload['id']}", headers=customer.headers).status_code == 404
    assert client.get(f"{UPLOADS}/{upload['id']}").status_code == 401


IMAGE_LIMIT = 64 * 1024
IMPORT_LIMIT = 96 * 1024

SPOOFED: list[tuple[str, str, Callable[[], bytes], int]] = [
    ("import", "products.csv", png, 415),  # a PNG named .csv
    ("product_image", "cat.png", lambda: HTML, 415),  # an HTML page named .png
    ("product_image", "logo.svg", lambda: SVG, 415),  # SVG (with a script)
    ("product_image", "logo.png", lambda: SVG, 415),
    ("product_image", "photo.png", elf_binary, 415),  # an ELF binary named .png
    ("import", "products.csv", zip_archive, 415),  # a zip named .csv
    ("import", "products.csv", lambda: b"<html>\n" + CSV, 415),  # a CSV whose first line is <html>
    ("import", "products.csv", lambda: "sku,name,price\nA-1,Café crème,9.99\n".encode("latin-1"), 415),
    ("import", "products.pdf", lambda: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n", 415),
    ("import", "empty.csv", lambda: b"", 422),
    ("product_image", "empty.png", lambda: b"", 422),
    ("import", "products.json", lambda: b'{"sku": "A-1"}', 422),  # JSON, but not an array
    ("import", "products.json", lambda: b'[{"sku": "A-1"}', 422),  # JSON cut short
    ("import", "deep.json", lambda: b'[{"sku": ' + b"[" * 17 + b"]" * 17 + b"}]", 422),  # nested deeper than a row
    ("import", "products.csv", lambda: b"   \n\n", 422),  # no header row
    # A lone surrogate escape: no character (yajl turned a high one into "?", and a low one was a 500).
    ("import", "products.json", lambda: b'[{"sku": "A-1", "name": "x\\udc00y", "price": "1.00"}]', 422),
    ("import", "products.json", lambda: b'[{"sku": "A-1", "name": "x\\ud800y", "price": "1.00"}]', 422),
    ("import", "big.csv", lambda: b"sku,name\n" + b"A" * (IMPORT_LIMIT - 8), 413),  # one byte over the limit
    ("product_image", "big.png", lambda: png(2, 2) + b"\0" * (IMAGE_LIMIT - len(png(2, 2)) + 1), 413),  # one byte over
]


@pytest.fixture
def small_limits(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "UPLOAD_IMAGE_MAX_BYTES", IMAGE_LIMIT)
    monkeypatch.setitem(app.config, "UPLOAD_IMPORT_MAX_BYTES", IMPORT_LIMIT)


@pytest.mark.parametrize(
    ("purpose", "filename", "make", "expected"),
    SPOOFED,
    ids=[f"{p}-{f}-{e}-{i}" for i, (p, f, _, e) in enumerate(SPOOFED)],
)
def test_a_refused_file_leaves_nothing_in_storage_or_the_database(
    app: Flask,
    client: FlaskClient,
    storage: Storage,
    staff: AuthedUser,
    small_limits: None,
    purpose: str,
    filename: str,
    make: Callable[[], bytes],
    expected: int,
) -> None:
    content = make()
    response = post_upload(client, staff, content, filename, purpose)
    assert response.status_code == expected, response.get_data(as_text=True)
    error = json_of(response)["error"]
    assert error["code"] == {413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 422: "VALIDATION_ERROR"}[expected]
    assert [d["field"] for d in error["details"]] == ["file"]
    nothing_kept(app, storage)


def test_one_byte_under_the_limit_is_fine(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, small_limits: None
) -> None:
    content = b"sku,name\n" + b"A,B\n" * ((IMPORT_LIMIT - 9) // 4)
    content += b"\n" * (IMPORT_LIMIT - len(content))
    assert len(content) == IMPORT_LIMIT
    assert created(post_upload(client, staff, content, "exact.csv", "import"))["size"] == IMPORT_LIMIT


def test_the_file_may_come_before_its_purpose(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, small_limits: None
) -> None:
    body, content_type = multipart_body([("file", CSV, "c.csv"), ("purpose", b"import", None)])
    upload = created(client.post(UPLOADS, data=body, content_type=content_type, headers=staff.headers))
    assert upload["status"] == "ready" and upload["size"] == len(CSV)
    # Over the image limit, under the largest one: refused once the purpose is known.
    too_big = png(2, 2) + b"\0" * IMAGE_LIMIT
    body, content_type = multipart_body([("file", too_big, "p.png"), ("purpose", b"product_image", None)])
    response = client.post(UPLOADS, data=body, content_type=content_type, headers=staff.headers)
    assert response.status_code == 413
    assert stored(storage) == [f"{upload['id']}/file"]
    assert len(rows(app)) == 1


BAD_FORMS: list[tuple[list[tuple[str, bytes, str | None]], set[str]]] = [
    ([("file", CSV, "c.csv")], {"purpose"}),
    ([("purpose", b"import", None)], {"file"}),
    ([("purpose", b"export", None), ("file", CSV, "c.csv")], {"purpose"}),  # written by the API only
    ([("purpose", b"avatar", None), ("file", CSV, "c.csv")], {"purpose"}),
    ([("purpose", b"import", None), ("file", CSV, None)], {"file"}),  # a field, not a file
    ([("purpose", b"import", None), ("file", CSV, "c.csv"), ("file", CSV, "d.csv")], {"file"}),
    ([("purpose", b"import", None), ("colour", b"red", None), ("file", CSV, "c.csv")], {"colour"}),
    ([("purpose", b"import" * 500, None), ("file", CSV, "c.csv")], {"purpose"}),
]


@pytest.mark.parametrize(("parts", "fields"), BAD_FORMS)
def test_an_invalid_form_is_a_422_naming_each_field(
    app: Flask,
    client: FlaskClient,
    storage: Storage,
    staff: AuthedUser,
    parts: list[tuple[str, bytes, str | None]],
    fields: set[str],
) -> None:
    body, content_type = multipart_body(parts)
    response = client.post(UPLOADS, data=body, content_type=content_type, headers=staff.headers)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert {d["field"] for d in json_of(response)["error"]["details"]} == fields
    nothing_kept(app, storage)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"purpose": "import"}', "application/json"),
        (b"purpose=import", "application/x-www-form-urlencoded"),
        (b"--x\r\nnot a part\r\n--x--\r\n", "multipart/form-data; boundary=x"),
        (b'--x\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nimport', "multipart/form-data; boundary=x"),
        (b"", "multipart/form-data"),
    ],
)
def test_a_body_that_is_not_a_multipart_form_is_a_400(
    app: Flask, client: FlaskClient, staff: AuthedUser, body: bytes, content_type: str
) -> None:
    response = client.post(UPLOADS, data=body, headers=staff.headers, environ_overrides={"CONTENT_TYPE": content_type})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert json_of(response)["error"]["code"] == "BAD_REQUEST"


def test_only_staff_may_upload(app: Flask, client: FlaskClient, customer: AuthedUser) -> None:
    assert post_upload(client, customer, CSV, "c.csv", "import").status_code == 403
    assert post_upload(client, None, CSV, "c.csv", "import").status_code == 401
    assert rows(app) == []


def test_the_clients_filename_is_cleaned_and_never_used_as_a_key(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser
) -> None:
    upload = created(post_upload(client, staff, CSV, "../../etc/passwd\u202egnp.csv", "import"))
    assert upload["filename"] == "passwdgnp.csv"
    assert stored(storage) == [f"{upload['id']}/file"]


def test_a_download_is_named_for_what_it_is(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser
) -> None:
    upload = created(post_upload(client, staff, CSV, "prïce list.html", "import"))
    _, _, headers = fetch_content(app, client, upload["url"], staff)
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"price list.csv\"; filename*=UTF-8''pr%C3%AFce%20list.csv"
    )


def test_uploads_are_listed_newest_first_with_filters_and_both_pagination_styles(
    app: Flask,
    client: FlaskClient,
    file_storage: Storage,
    staff: AuthedUser,
    other_staff: AuthedUser,
    run_jobs: Callable[[], int],
) -> None:
    mine = [created(post_upload(client, staff, CSV, f"{i}.csv", "import"))["id"] for i in range(3)]
    image = created(post_upload(client, staff, png(), "p.png", "product_image"))["id"]
    settle(run_jobs)
    theirs = created(post_upload(client, other_staff, CSV, "t.csv", "import"))["id"]

    body = json_of(client.get(UPLOADS, headers=staff.headers))
    assert [u["id"] for u in body["data"]] == [theirs, image, *reversed(mine)]  # staff see all
    assert body["meta"]["total"] == 5
    imports = json_of(client.get(f"{UPLOADS}?purpose=import&per_page=2", headers=staff.headers))
    assert imports["meta"] == {"page": 1, "per_page": 2, "total": 4, "total_pages": 2}
    page = json_of(client.get(f"{UPLOADS}?status=ready&limit=4", headers=staff.headers))
    assert page["meta"]["has_more"] is True and len(page["data"]) == 4
    rest = json_of(
        client.get(f"{UPLOADS}?status=ready&limit=4&cursor={page['meta']['next_cursor']}", headers=staff.headers)
    )
    assert [u["id"] for u in page["data"] + rest["data"]] == [theirs, image, *reversed(mine)]
    assert client.get(f"{UPLOADS}?status=done", headers=staff.headers).status_code == 422


def test_a_customer_lists_only_their_own(
    app: Flask, client: FlaskClient, staff: AuthedUser, customer: AuthedUser
) -> None:
    created(post_upload(client, staff, CSV, "c.csv", "import"))
    body = json_of(client.get(UPLOADS, headers=customer.headers))
    assert body["data"] == [] and body["meta"]["total"] == 0


def test_deleting_an_upload_removes_its_objects(
    app: Flask,
    client: FlaskClient,
    storage: Storage,
    staff: AuthedUser,
    other_staff: AuthedUser,
    run_jobs: Callable[[], int],
) -> None:
    image = created(post_upload(client, staff, png(), "p.png", "product_image"))
    settle(run_jobs)
    image = get_upload(client, staff, image["id"])
    data = created(post_upload(client, staff, CSV, "c.csv", "import"))
    assert client.delete(f"{UPLOADS}/{image['id']}", headers=other_staff.headers).status_code == 204  # staff
    assert client.delete(f"{UPLOADS}/{data['id']}", headers=staff.headers).status_code == 204
    assert client.delete(f"{UPLOADS}/{data['id']}", headers=staff.headers).status_code == 404
    nothing_kept(app, storage)
    assert fetch_content(app, client, image["url"])[0] == 404


def test_rate_limited_per_client(
    app: Flask, client: FlaskClient, staff: AuthedUser, other_staff: AuthedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "RATELIMIT_UPLOADS", "2 per minute")
    for _ in range(2):
        assert post_upload(client, staff, CSV, "c.csv", "import").status_code == 201
    # One budget for every way in.
    refused = client.post(
        f"{UPLOADS}/direct",
        json={"purpose": "import", "filename": "c.csv", "size": 10, "content_type": "text/csv"},
        headers=staff.headers,
    )
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert json_of(refused)["error"]["code"] == "RATE_LIMITED"
    assert post_upload(client, other_staff, CSV, "c.csv", "import").status_code == 201


def test_a_deeply_nested_json_file_is_refused_in_a_few_megabytes(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, small_limits: None
) -> None:
    # 20 KB of brackets: a parser that builds a path per event (ijson.parse) needed
    # hundreds of MB for it, and gigabytes for the same file four times as deep.
    content = b"[" * 10_000 + b"]" * 10_000
    tracemalloc.start()
    try:
        response = post_upload(client, staff, content, "deep.json", "import")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 422, response.get_data(as_text=True)
    assert json_of(response)["error"]["details"] == [
        {"field": "file", "message": "Not valid JSON for an import: nested more than 16 levels deep."}
    ]
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    nothing_kept(app, storage)


def test_a_csv_naming_a_column_twice_is_refused_with_its_name(
    client: FlaskClient, storage: Storage, staff: AuthedUser
) -> None:
    response = post_upload(client, staff, b"sku,name,price,Name\nA-1,Mug,1.00,Cup\n", "products.csv", "import")
    assert response.status_code == 422
    assert "'name'" in json_of(response)["error"]["details"][0]["message"]
    # A header of 60,000 cells is counted once (comparing each name with every other took
    # minutes of a web worker's CPU).
    wide = ",".join(f"c{n % 30_000}" for n in range(60_000)).encode() + b"\n"
    response = post_upload(client, staff, wide, "wide.csv", "import")
    assert response.status_code == 422 and "'c0', 'c1'" in json_of(response)["error"]["details"][0]["message"]
