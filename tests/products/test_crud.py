"""Products through HTTP, for each role: who may write, what comes back, soft deletes."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import AuthedUser, create_user
from tests.products.builders import PRODUCTS, make_category, make_product, product_body

PRODUCT_FIELDS = {
    "id",
    "sku",
    "slug",
    "name",
    "description",
    "price",
    "compare_at_price",
    "currency",
    "stock",
    "in_stock",
    "low_stock",
    "is_active",
    "categories",
    "image_upload_id",
    "image_url",
    "thumbnails",
    "version",
    "created_at",
    "updated_at",
}


def test_create_returns_201_location_etag_and_the_documented_fields(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    shirts = make_category(app, "shirts", "Shirts")
    body = product_body(
        sku="tee-red-m",
        name="Red T-Shirt",
        price="19.5",
        compare_at_price="25",
        stock=3,
        category_ids=[shirts],
    )
    response = client.post(PRODUCTS, json=body, headers=staff.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    product = json_of(response)["data"]
    assert set(product) == PRODUCT_FIELDS
    assert response.headers["Location"] == f"{PRODUCTS}/{product['id']}"
    assert response.headers["ETag"] == f'"{product["id"]}-v1"'
    assert product["sku"] == "TEE-RED-M"  # normalised to upper case
    assert product["slug"] == "red-t-shirt"
    assert (product["price"], product["compare_at_price"], product["currency"]) == ("19.50", "25.00", "USD")
    assert product["stock"] == 3 and product["in_stock"] is True and product["low_stock"] is True
    assert product["is_active"] is True and product["version"] == 1
    assert product["image_upload_id"] is None and product["image_url"] is None and product["thumbnails"] is None
    assert product["categories"] == [{"id": shirts, "slug": "shirts", "name": "Shirts"}]
    assert product["created_at"].endswith("Z")
    assert json_of(client.get(response.headers["Location"]))["data"] == product


def test_currency_comes_from_config(app: Flask, client: FlaskClient) -> None:
    product_id = make_product(app)
    app.config["CURRENCY"] = "EUR"
    try:
        assert json_of(client.get(f"{PRODUCTS}/{product_id}"))["data"]["currency"] == "EUR"
    finally:
        app.config["CURRENCY"] = "USD"


def test_defaults_and_stock_flags(client: FlaskClient, staff: AuthedUser) -> None:
    created = json_of(client.post(PRODUCTS, json=product_body(stock=0), headers=staff.headers))["data"]
    assert created["in_stock"] is False and created["low_stock"] is True
    assert created["compare_at_price"] is None and created["categories"] == []
    plenty = product_body(stock=6, low_stock_threshold=5)
    created = json_of(client.post(PRODUCTS, json=plenty, headers=staff.headers))["data"]
    assert created["in_stock"] is True and created["low_stock"] is False


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_and_admin_can_create_replace_patch_and_delete(app: Flask, client: FlaskClient, role: str) -> None:
    writer = create_user(app, role=role)
    created = client.post(PRODUCTS, json=product_body(name="Blue Mug"), headers=writer.headers)
    assert created.status_code == 201
    url = created.headers["Location"]

    replaced = client.put(url, json=product_body(name="Big Blue Mug", price="7.00"), headers=writer.headers)
    assert replaced.status_code == 200
    assert json_of(replaced)["data"]["name"] == "Big Blue Mug" and json_of(replaced)["data"]["version"] == 2

    patched = client.patch(url, json={"stock": 0}, headers=writer.headers)
    assert patched.status_code == 200
    data = json_of(patched)["data"]
    assert data["stock"] == 0 and data["name"] == "Big Blue Mug" and data["version"] == 3

    deleted = client.delete(url, headers=writer.headers)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    for headers in ({}, writer.headers):
        assert client.get(url, headers=headers).status_code == 404
        assert client.patch(url, json={"stock": 1}, headers=writer.headers).status_code == 404
        assert client.delete(url, headers=writer.headers).status_code == 404
    assert json_of(client.get(PRODUCTS, headers=writer.headers))["data"] == []


def test_anonymous_gets_401_and_customer_403_on_every_write(
    app: Flask, client: FlaskClient, customer: AuthedUser
) -> None:
    product_id = make_product(app, name="Untouchable")
    url = f"{PRODUCTS}/{product_id}"
    writes = [
        ("post", PRODUCTS, product_body()),
        ("put", url, product_body()),
        ("patch", url, {"name": "Changed"}),
        ("delete", url, None),
        ("post", "/api/v1/categories", {"name": "Nope"}),
    ]
    for method, path, body in writes:
        anonymous = getattr(client, method)(path, json=body)
        assert anonymous.status_code == 401, (method, path)
        assert json_of(anonymous)["error"]["code"] == "UNAUTHORIZED"
        forbidden = getattr(client, method)(path, json=body, headers=customer.headers)
        assert forbidden.status_code == 403, (method, path)
        assert json_of(forbidden)["error"]["code"] == "FORBIDDEN"
    product = json_of(client.get(url))["data"]
    assert product["name"] == "Untouchable" and product["version"] == 1
    assert json_of(client.get(PRODUCTS))["meta"]["total"] == 1


def test_permission_is_checked_before_the_body(client: FlaskClient, customer: AuthedUser) -> None:
    assert client.post(PRODUCTS, json={"price": "nope"}).status_code == 401
    assert client.post(PRODUCTS, json={"price": "nope"}, headers=customer.headers).status_code == 403


def test_everyone_reads_by_id_and_by_slug(app: Flask, client: FlaskClient, customer: AuthedUser) -> None:
    product_id = make_product(app, slug="green-tea", name="Green Tea")
    for headers in ({}, customer.headers):
        by_id = json_of(client.get(f"{PRODUCTS}/{product_id}", headers=headers))["data"]
        by_slug = json_of(client.get(f"{PRODUCTS}/green-tea", headers=headers))["data"]
        assert by_id == by_slug and by_id["name"] == "Green Tea"
    for missing in ("no-such-slug", "01900000-0000-7000-8000-000000000000", "NOT A SLUG"):
        response = client.get(f"{PRODUCTS}/{missing}")
        assert response.status_code == 404 and json_of(response)["error"]["code"] == "NOT_FOUND"


def test_writes_address_products_by_id_or_slug(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    make_product(app, slug="green-tea")
    patched = client.patch(f"{PRODUCTS}/green-tea", json={"stock": 1}, headers=staff.headers)
    assert patched.status_code == 200 and json_of(patched)["data"]["stock"] == 1
    replaced = client.put(f"{PRODUCTS}/green-tea", json=product_body(name="Green Tea"), headers=staff.headers)
    assert replaced.status_code == 200 and json_of(replaced)["data"]["name"] == "Green Tea"
    assert client.delete(f"{PRODUCTS}/green-tea", headers=staff.headers).status_code == 204
    assert client.get(f"{PRODUCTS}/green-tea").status_code == 404
    assert client.patch(f"{PRODUCTS}/green-tea", json={"stock": 2}, headers=staff.headers).status_code == 404


def test_inactive_product_is_visible_to_staff_only(
    app: Flask, client: FlaskClient, staff: AuthedUser, customer: AuthedUser
) -> None:
    hidden = make_product(app, slug="secret", is_active=False)
    for headers in ({}, customer.headers):
        assert client.get(f"{PRODUCTS}/{hidden}", headers=headers).status_code == 404
        assert client.get(f"{PRODUCTS}/secret", headers=headers).status_code == 404
        assert json_of(client.get(PRODUCTS, headers=headers))["data"] == []
    assert json_of(client.get(f"{PRODUCTS}/secret", headers=staff.headers))["data"]["is_active"] is False
    assert [p["id"] for p in json_of(client.get(PRODUCTS, headers=staff.headers))["data"]] == [hidden]
    # Activating it makes it public.
    assert client.patch(f"{PRODUCTS}/{hidden}", json={"is_active": True}, headers=staff.headers).status_code == 200
    assert client.get(f"{PRODUCTS}/secret").status_code == 200


def test_slug_is_generated_unique_and_ascii(client: FlaskClient, staff: AuthedUser) -> None:
    slugs = [
        json_of(client.post(PRODUCTS, json=product_body(name="Crème Brûlée!"), headers=staff.headers))["data"]["slug"]
        for _ in range(3)
    ]
    assert slugs == ["creme-brulee", "creme-brulee-2", "creme-brulee-3"]
    odd = json_of(client.post(PRODUCTS, json=product_body(name="€€€"), headers=staff.headers))["data"]
    assert odd["slug"] == "product"
    uuid_like = "01900000-0000-7000-8000-000000000000"
    looks_like_id = json_of(client.post(PRODUCTS, json=product_body(name=uuid_like), headers=staff.headers))["data"]
    assert looks_like_id["slug"] == f"product-{uuid_like}"
    assert client.get(f"{PRODUCTS}/product-{uuid_like}").status_code == 200


def test_explicit_slug_is_kept(client: FlaskClient, staff: AuthedUser) -> None:
    body = product_body(name="Anything", slug="my-own-slug")
    assert json_of(client.post(PRODUCTS, json=body, headers=staff.headers))["data"]["slug"] == "my-own-slug"


def test_duplicate_sku_is_409_naming_sku(client: FlaskClient, staff: AuthedUser) -> None:
    assert client.post(PRODUCTS, json=product_body(sku="DUP-1"), headers=staff.headers).status_code == 201
    response = client.post(PRODUCTS, json=product_body(sku="dup-1"), headers=staff.headers)
    assert response.status_code == 409
    error = json_of(response)["error"]
    assert error["code"] == "CONFLICT" and [d["field"] for d in error["details"]] == ["sku"]
    assert json_of(client.get(PRODUCTS, headers=staff.headers))["meta"]["total"] == 1


def test_duplicate_slug_is_409_naming_slug(client: FlaskClient, staff: AuthedUser) -> None:
    assert client.post(PRODUCTS, json=product_body(slug="same"), headers=staff.headers).status_code == 201
    response = client.post(PRODUCTS, json=product_body(slug="same"), headers=staff.headers)
    assert response.status_code == 409
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["slug"]


def test_update_to_a_taken_sku_or_slug_is_409_and_changes_nothing(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    make_product(app, sku="TAKEN-1", slug="taken")
    mine = make_product(app, sku="MINE-1", slug="mine", name="Mine")
    url = f"{PRODUCTS}/{mine}"
    for change, field in (({"sku": "taken-1"}, "sku"), ({"slug": "taken", "name": "Renamed"}, "slug")):
        response = client.patch(url, json=change, headers=staff.headers)
        assert response.status_code == 409
        assert [d["field"] for d in json_of(response)["error"]["details"]] == [field]
    product = json_of(client.get(url))["data"]
    assert (product["sku"], product["slug"], product["name"], product["version"]) == ("MINE-1", "mine", "Mine", 1)


def test_a_deleted_products_sku_and_slug_can_be_reused(client: FlaskClient, staff: AuthedUser) -> None:
    first = client.post(PRODUCTS, json=product_body(sku="REUSE-1", slug="reuse"), headers=staff.headers)
    assert client.delete(first.headers["Location"], headers=staff.headers).status_code == 204
    again = client.post(PRODUCTS, json=product_body(sku="REUSE-1", slug="reuse"), headers=staff.headers)
    assert again.status_code == 201
    assert client.get(f"{PRODUCTS}/reuse").headers["ETag"] == again.headers["ETag"]
    assert client.get(first.headers["Location"]).status_code == 404


def test_put_replaces_every_writable_field_but_keeps_an_omitted_slug(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    shirts = make_category(app, "shirts")
    body = product_body(slug="keep-me", compare_at_price="30.00", low_stock_threshold=9, category_ids=[shirts])
    url = client.post(PRODUCTS, json=body, headers=staff.headers).headers["Location"]
    replacement = product_body(name="Replaced", price="12.00")
    data = json_of(client.put(url, json=replacement, headers=staff.headers))["data"]
    assert data["slug"] == "keep-me" and data["name"] == "Replaced" and data["sku"] == replacement["sku"]
    assert data["compare_at_price"] is None and data["categories"] == [] and data["is_active"] is True
    assert data["low_stock"] is False  # threshold back to the default 5, stock 10
    missing_required = client.put(url, json={"name": "Only a name"}, headers=staff.headers)
    assert missing_required.status_code == 422
    fields = {d["field"] for d in json_of(missing_required)["error"]["details"]}
    assert fields == {"sku", "price", "stock"}


def test_patch_changes_only_what_is_sent(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    shirts, sale = make_category(app, "shirts"), make_category(app, "sale")
    url = client.post(PRODUCTS, json=product_body(name="Hoodie", category_ids=[shirts]), headers=staff.headers).headers[
        "Location"
    ]
    data = json_of(client.patch(url, json={"category_ids": [sale, shirts]}, headers=staff.headers))["data"]
    assert [c["slug"] for c in data["categories"]] == ["sale", "shirts"] and data["name"] == "Hoodie"
    data = json_of(client.patch(url, json={"compare_at_price": "99.99"}, headers=staff.headers))["data"]
    assert data["compare_at_price"] == "99.99" and len(data["categories"]) == 2
    data = json_of(client.patch(url, json={"compare_at_price": None}, headers=staff.headers))["data"]
    assert data["compare_at_price"] is None


def test_every_change_bumps_the_version_and_a_no_op_does_not(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    sale = make_category(app, "sale")
    url = client.post(PRODUCTS, json=product_body(stock=5), headers=staff.headers).headers["Location"]
    versions = []
    for change in ({"stock": 6}, {"category_ids": [sale]}, {"stock": 6}, {"is_active": False}, {}):
        response = client.patch(url, json=change, headers=staff.headers)
        assert response.status_code == 200
        versions.append(json_of(response)["data"]["version"])
        assert response.headers["ETag"].endswith(f'-v{versions[-1]}"')
    assert versions == [2, 3, 3, 4, 4]
    updated = json_of(client.get(url, headers=staff.headers))["data"]
    assert updated["updated_at"] > updated["created_at"]
