"""HTTP caching of catalog reads: ETags and 304s on lists too, who may share an answer, and
answers written by hand that are exactly what the schemas would write."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import selectinload

from app.db import db
from app.extensions import redis_queues
from app.products import cache
from app.products.models import Product
from app.products.schemas import CategorySchema, ProductSchema
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.orders.conftest import ADDRESS
from tests.products.builders import CATEGORIES, PRODUCTS, make_category, make_product, make_products

PUBLIC = "public, max-age=0, must-revalidate"


def test_a_list_has_an_etag_and_answers_304_until_something_changes(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    product_id = make_product(app, name="Kettle", stock=7)
    url = f"{PRODUCTS}?per_page=10"
    first = client.get(url)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == PUBLIC and first.headers["Vary"] == "Authorization"

    unchanged = client.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.get_data() == b""
    assert unchanged.headers["ETag"] == etag and unchanged.headers["Cache-Control"] == PUBLIC
    assert client.get(url, headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304

    assert client.patch(f"{PRODUCTS}/{product_id}", json={"name": "Kettle 2"}, headers=staff.headers).status_code == 200
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert json_of(changed)["data"][0]["name"] == "Kettle 2"


def test_a_sale_changes_the_list_etag(app: Flask, client: FlaskClient, customer: AuthedUser) -> None:
    product_id = make_product(app, stock=7)
    etag = client.get(PRODUCTS).headers["ETag"]
    body = {"items": [{"product_id": product_id, "quantity": 2}], "shipping_address": ADDRESS}
    assert client.post("/api/v1/orders", json=body, headers=customer.headers).status_code == 201
    after = client.get(PRODUCTS, headers={"If-None-Match": etag})
    assert after.status_code == 200
    (product,) = json_of(after)["data"]
    assert (product["stock"], product["version"]) == (5, 2)


def test_what_staff_see_is_private(app: Flask, client: FlaskClient, staff: AuthedUser, customer: AuthedUser) -> None:
    product_id = make_product(app, is_active=False)
    make_product(app)
    staff_list = client.get(PRODUCTS, headers=staff.headers)
    assert len(json_of(staff_list)["data"]) == 2
    assert staff_list.headers["Cache-Control"] == "private, no-store"
    assert staff_list.headers["Vary"] == "Authorization"
    staff_item = client.get(f"{PRODUCTS}/{product_id}", headers=staff.headers)
    assert staff_item.status_code == 200 and staff_item.headers["Cache-Control"] == "private, no-store"
    # A customer sees what anyone sees, and that may be shared.
    customer_list = client.get(PRODUCTS, headers=customer.headers)
    assert len(json_of(customer_list)["data"]) == 1
    assert customer_list.headers["Cache-Control"] == PUBLIC
    assert customer_list.get_data() == client.get(PRODUCTS).get_data()


def test_the_cache_is_redis_and_the_embedded_default_has_none(app: Flask, client: FlaskClient) -> None:
    make_product(app)
    client.get(PRODUCTS)
    with app.app_context():
        assert cache.enabled() is not redis_queues.in_process
        entries = list(redis_queues.connection.scan_iter(match=cache.ENTRY_PREFIX + "*"))
        # fakeredis (the embedded default's stand-in) is never used as a cache.
        assert bool(entries) is cache.enabled()


def test_a_product_keeps_its_version_etag_and_is_public(app: Flask, client: FlaskClient) -> None:
    product_id = make_product(app, slug="tea")
    for ref in (product_id, "tea"):
        response = client.get(f"{PRODUCTS}/{ref}")
        assert response.headers["ETag"] == f'"{product_id}-v1"'
        assert response.headers["Cache-Control"] == PUBLIC and response.headers["Vary"] == "Authorization"
        assert client.get(f"{PRODUCTS}/{ref}", headers={"If-None-Match": "*"}).status_code == 304


def test_categories_have_etags_too(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    make_category(app, "mugs")
    listed = client.get(CATEGORIES)
    assert listed.headers["Cache-Control"] == PUBLIC
    assert client.get(CATEGORIES, headers={"If-None-Match": listed.headers["ETag"]}).status_code == 304
    one = client.get(f"{CATEGORIES}/mugs")
    assert client.get(f"{CATEGORIES}/mugs", headers={"If-None-Match": one.headers["ETag"]}).status_code == 304
    assert client.post(CATEGORIES, json={"name": "Lamps"}, headers=staff.headers).status_code == 201
    again = client.get(CATEGORIES, headers={"If-None-Match": listed.headers["ETag"]})
    assert again.status_code == 200 and len(json_of(again)["data"]) == 2


def test_list_headers_are_documented(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    for path in ("/api/v1/products", "/api/v1/products/{id_or_slug}", "/api/v1/categories"):
        responses = spec["paths"][path]["get"]["responses"]
        for status in ("200", "304"):
            assert {"ETag", "Cache-Control"} <= set(responses[status]["headers"]), (path, status)
        assert "If-None-Match" in {p["name"] for p in spec["paths"][path]["get"]["parameters"] if p["in"] == "header"}


# --- written by hand, exactly as the schemas write -------------------------------------------


def _varied_catalog(app: Flask) -> None:
    mugs, art = make_category(app, "mugs", "Mugs"), make_category(app, "art", "Art")
    also_art = make_category(app, "also-art", "Art")  # the same name: ties break on the id
    make_products(app, 3, category_ids=[mugs, also_art, art])
    make_product(app, name="Crème brûlée «set»", description='Quotes " and \\ and\nlines\t\u2028', stock=0)
    make_product(app, name="Vase", price=Decimal("5.00"), compare_at_price=Decimal("7.50"), stock=3)
    make_product(app, name="Hidden", is_active=False, stock=100, low_stock_threshold=0)


def _expected(app: Flask, products: list[Product], meta: dict[str, Any] | None, only: tuple[str, ...] | None) -> bytes:
    schema = ProductSchema(many=meta is not None, only=only)
    with app.test_request_context():
        envelope: dict[str, Any] = {"data": schema.dump(products if meta is not None else products[0])}
        if meta is not None:
            envelope["meta"] = meta
        return app.json.response(envelope).get_data()


def _products(app: Flask, **where: Any) -> list[Product]:
    with app.app_context():
        stmt = sa.select(Product).options(selectinload(Product.categories)).filter_by(**where)
        products = list(db.session.scalars(stmt.order_by(Product.name, Product.id)))
        db.session.expunge_all()
        return products


@pytest.mark.parametrize("only", [None, ("id", "stock", "name", "updated_at"), ("categories", "low_stock")])
def test_lists_are_byte_for_byte_what_the_schema_writes(
    app: Flask, client: FlaskClient, staff: AuthedUser, only: tuple[str, ...] | None
) -> None:
    _varied_catalog(app)
    fields = f"&fields={','.join(only)}" if only else ""
    for headers, where in (({}, {"is_active": True}), (staff.headers, {})):
        for url in (f"{PRODUCTS}?sort=name&per_page=50{fields}", f"{PRODUCTS}?sort=name&limit=50{fields}"):
            client.get(url, headers=headers)  # once to fill the cache (services run), once from it
            response = client.get(url, headers=headers)
            meta = json_of(response)["meta"]
            expected = _expected(app, _products(app, **where), meta, only)
            assert response.get_data() == expected, url


def test_a_product_is_byte_for_byte_what_the_schema_writes(app: Flask, client: FlaskClient) -> None:
    _varied_catalog(app)
    for product in _products(app, is_active=True):
        for only in (None, ("name", "version")):
            url = f"{PRODUCTS}/{product.slug}" + (f"?fields={','.join(only)}" if only else "")
            client.get(url)
            assert client.get(url).get_data() == _expected(app, [product], None, only), url


def test_categories_are_byte_for_byte_what_the_schema_writes(app: Flask, client: FlaskClient) -> None:
    make_category(app, "mugs", "Mugs «fine»")
    make_category(app, "art")
    body = client.get(f"{CATEGORIES}?sort=name").get_data()
    parsed = json.loads(body)
    assert [c["slug"] for c in parsed["data"]] == ["art", "mugs"]
    with app.app_context():
        from app.products.models import Category

        categories = list(db.session.scalars(sa.select(Category).order_by(Category.name)))
        envelope = {"data": CategorySchema(many=True).dump(categories), "meta": parsed["meta"]}
        with app.test_request_context():
            assert body == app.json.response(envelope).get_data()
