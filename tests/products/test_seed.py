"""seed_catalog: demo categories and products, idempotent."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from app.products.seed import DEMO_CATEGORIES, SeedResult, seed_catalog
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.products.builders import CATEGORIES, PRODUCTS


def test_seed_creates_categories_and_products_once(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    with app.app_context():
        first = seed_catalog(products=30)
        second = seed_catalog(products=30)
        more = seed_catalog(products=40)
    assert first == SeedResult(categories_created=len(DEMO_CATEGORIES), products_created=30, products_existing=0)
    assert second == SeedResult(categories_created=0, products_created=0, products_existing=30)
    assert more == SeedResult(categories_created=0, products_created=10, products_existing=30)

    assert json_of(client.get(CATEGORIES))["meta"]["total"] == len(DEMO_CATEGORIES)
    everything = json_of(client.get(f"{PRODUCTS}?per_page=100", headers=staff.headers))
    assert everything["meta"]["total"] == 40
    products = everything["data"]
    assert len({p["sku"] for p in products}) == len({p["slug"] for p in products}) == 40
    assert all(p["categories"] for p in products)
    assert any(not p["in_stock"] for p in products) and any(p["compare_at_price"] for p in products)
    public = json_of(client.get(f"{PRODUCTS}?per_page=100"))["meta"]["total"]
    assert public == 39  # every 25th demo product is inactive


def test_seed_survives_a_clashing_slug(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    with app.app_context():
        seed_catalog(products=1)
        slug = json_of(client.get(PRODUCTS))["data"][0]["slug"]
    response = client.patch(
        f"{PRODUCTS}/{json_of(client.get(PRODUCTS))['data'][0]['id']}",
        json={"sku": "MINE-1"},
        headers=staff.headers,
    )
    assert response.status_code == 200
    with app.app_context():
        result = seed_catalog(products=1)
    assert result.products_created == 1
    slugs = {p["slug"] for p in json_of(client.get(PRODUCTS))["data"]}
    assert slugs == {slug, f"{slug}-demo"}
