"""A product's image is a ready product_image upload; a foreign key keeps it while shown."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.errors import ServiceUnavailable
from app.storage import EXTENSION_KEY, S3Storage, Storage
from tests.conftest import SERVED_BASE_URL, json_of
from tests.factories import AuthedUser
from tests.products.builders import PRODUCTS, product_body
from tests.uploads.conftest import S3_REGION
from tests.uploads.support import (
    CSV,
    UPLOADS,
    created,
    fetch_content,
    huge_one_bit_png,
    png,
    post_upload,
    settle,
    stored,
)


def _image(client: FlaskClient, staff: AuthedUser, run_jobs: Callable[[], int], content: bytes | None = None) -> str:
    upload = created(post_upload(client, staff, content or png(600, 400), "p.png", "product_image"))
    settle(run_jobs)
    return str(upload["id"])


def test_a_product_shows_its_image_and_thumbnails(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    image_id = _image(client, staff, run_jobs)
    product = created(client.post(PRODUCTS, json=product_body(image_upload_id=image_id), headers=staff.headers))
    base = f"{SERVED_BASE_URL}{UPLOADS}/{image_id}/content"
    assert product["image_upload_id"] == image_id
    assert product["image_url"] == base
    assert product["thumbnails"] == {"small": f"{base}?variant=small", "medium": f"{base}?variant=medium"}
    # The shop's visitors load them without an account.
    for url in (product["image_url"], *product["thumbnails"].values()):
        status, _, headers = fetch_content(app, client, url)
        assert status == 200 and headers["Content-Type"] == "image/png"
    listed = json_of(client.get(f"{PRODUCTS}?fields=id,thumbnails"))["data"]
    assert listed == [{"id": product["id"], "thumbnails": product["thumbnails"]}]


def test_only_a_ready_product_image_may_be_a_products_image(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    import_file = created(post_upload(client, staff, CSV, "c.csv", "import"))["id"]
    failed = _image(client, staff, run_jobs, huge_one_bit_png())
    for candidate in (import_file, failed, "01900000-0000-7000-8000-000000000000"):
        response = client.post(PRODUCTS, json=product_body(image_upload_id=candidate), headers=staff.headers)
        assert response.status_code == 422, candidate
        assert [d["field"] for d in json_of(response)["error"]["details"]] == ["image_upload_id"]
    assert json_of(client.get(PRODUCTS, headers=staff.headers))["data"] == []


def test_an_upload_a_product_uses_cannot_be_deleted_until_the_product_lets_go(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    image_id = _image(client, staff, run_jobs)
    product = created(client.post(PRODUCTS, json=product_body(image_upload_id=image_id), headers=staff.headers))
    response = client.delete(f"{UPLOADS}/{image_id}", headers=staff.headers)
    assert response.status_code == 409 and json_of(response)["error"]["code"] == "CONFLICT"
    assert len(stored(storage)) == 3  # nothing removed

    # Replaced on the product: free to go.
    other_id = _image(client, staff, run_jobs)
    patched = client.patch(f"{PRODUCTS}/{product['id']}", json={"image_upload_id": other_id}, headers=staff.headers)
    assert patched.status_code == 200
    assert client.delete(f"{UPLOADS}/{image_id}", headers=staff.headers).status_code == 204
    # A deleted product lets go of its image too.
    assert client.delete(f"{UPLOADS}/{other_id}", headers=staff.headers).status_code == 409
    assert client.delete(f"{PRODUCTS}/{product['id']}", headers=staff.headers).status_code == 204
    assert client.delete(f"{UPLOADS}/{other_id}", headers=staff.headers).status_code == 204
    assert stored(storage) == []


def test_an_image_can_be_removed_from_a_product(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    image_id = _image(client, staff, run_jobs)
    product = created(client.post(PRODUCTS, json=product_body(image_upload_id=image_id), headers=staff.headers))
    patched = json_of(
        client.patch(f"{PRODUCTS}/{product['id']}", json={"image_upload_id": None}, headers=staff.headers)
    )["data"]
    assert patched["image_upload_id"] is None and patched["image_url"] is None and patched["thumbnails"] is None


def test_a_delete_that_storage_refuses_leaves_the_upload_whole_for_a_retry(
    app: Flask,
    client: FlaskClient,
    storage: Storage,
    staff: AuthedUser,
    run_jobs: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Storage down: a 503, and the upload is still there, row and objects (the row used
    to go first, leaving its objects in the bucket with nothing pointing at them)."""
    image_id = _image(client, staff, run_jobs)
    before = stored(storage)

    def down(*keys: str) -> None:
        raise ServiceUnavailable("Storage is unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(storage, "delete", down)
        refused = client.delete(f"{UPLOADS}/{image_id}", headers=staff.headers)
    assert refused.status_code == 503 and json_of(refused)["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert client.get(f"{UPLOADS}/{image_id}", headers=staff.headers).status_code == 200
    assert stored(storage) == before
    assert client.delete(f"{UPLOADS}/{image_id}", headers=staff.headers).status_code == 204
    assert client.get(f"{UPLOADS}/{image_id}", headers=staff.headers).status_code == 404
    assert stored(storage) == []


def test_storage_that_stops_answering_is_a_503_within_seconds(
    app: Flask, client: FlaskClient, staff: AuthedUser, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str
) -> None:
    """An S3 endpoint that accepts connections and never answers (a hung store, a
    black-holing proxy; credentials as for the emulator): the upload is a 503 after
    STORAGE_TIMEOUT per attempt, not the
    eight minutes boto's defaults and ours held a web thread for."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setitem(
            app.extensions, EXTENSION_KEY, S3Storage("hung", endpoint_url=endpoint, region=S3_REGION, timeout=1)
        )
        started = time.monotonic()
        response = post_upload(client, staff, png(60, 40), "p.png", "product_image")
        elapsed = time.monotonic() - started
    assert response.status_code == 503 and json_of(response)["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert 1 <= elapsed < 15, elapsed  # it did wait for the store, not fail before asking


@pytest.mark.services  # PostgreSQL names the foreign key that refused the row
def test_an_image_deleted_while_a_product_is_being_given_it_is_a_422_naming_the_field(
    app: Flask,
    client: FlaskClient,
    file_storage: Storage,
    staff: AuthedUser,
    run_jobs: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checked ready, then deleted by another request before the product's write: the
    answer API.md promises for an image that is not a ready product image, not a bare 409."""
    import uuid

    import sqlalchemy as sa

    from app.db import db
    from app.products import service
    from app.uploads.models import Upload

    image_id = _image(client, staff, run_jobs)
    check_image = service._check_image

    def deleted_right_after_the_check(upload_id: uuid.UUID | None) -> None:
        check_image(upload_id)
        with db.engine.begin() as other:  # another request's DELETE, committed meanwhile
            other.execute(sa.delete(Upload.__table__).where(Upload.__table__.c.id == uuid.UUID(image_id)))

    monkeypatch.setattr(service, "_check_image", deleted_right_after_the_check)
    response = client.post(PRODUCTS, json=product_body(image_upload_id=image_id), headers=staff.headers)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["image_upload_id"]
    assert json_of(client.get(PRODUCTS, headers=staff.headers))["data"] == []
