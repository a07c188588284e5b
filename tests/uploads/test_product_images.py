"""A product's image is a ready product_image upload; a foreign key keeps it while shown."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from app.storage import Storage
from tests.conftest import SERVED_BASE_URL, json_of
from tests.factories import AuthedUser
from tests.products.builders import PRODUCTS, product_body
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
