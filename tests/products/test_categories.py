"""/categories: anyone lists and reads, products:write creates; slugs are unique."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.products.builders import CATEGORIES, make_category


def test_staff_creates_a_category_with_a_generated_slug(client: FlaskClient, staff: AuthedUser) -> None:
    response = client.post(CATEGORIES, json={"name": "Home & Garden", "description": "Outside"}, headers=staff.headers)
    assert response.status_code == 201
    category = json_of(response)["data"]
    assert set(category) == {"id", "name", "slug", "description", "created_at", "updated_at"}
    assert category["slug"] == "home-garden" and category["description"] == "Outside"
    assert response.headers["Location"] == f"{CATEGORIES}/{category['id']}"
    assert json_of(client.get(response.headers["Location"]))["data"] == category
    assert json_of(client.get(f"{CATEGORIES}/home-garden"))["data"] == category
    again = json_of(client.post(CATEGORIES, json={"name": "Home & Garden"}, headers=staff.headers))["data"]
    assert again["slug"] == "home-garden-2" and again["description"] is None


def test_duplicate_category_slug_is_409_naming_slug(client: FlaskClient, admin: AuthedUser) -> None:
    assert client.post(CATEGORIES, json={"name": "A", "slug": "same"}, headers=admin.headers).status_code == 201
    response = client.post(CATEGORIES, json={"name": "B", "slug": "same"}, headers=admin.headers)
    assert response.status_code == 409
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["slug"]


def test_anyone_lists_categories_by_name(app: Flask, client: FlaskClient, customer: AuthedUser) -> None:
    for slug in ("tea", "books", "mugs"):
        make_category(app, slug)
    for headers in ({}, customer.headers):
        body = json_of(client.get(CATEGORIES, headers=headers))
        assert [c["slug"] for c in body["data"]] == ["books", "mugs", "tea"]
        assert body["meta"] == {"page": 1, "per_page": 20, "total": 3, "total_pages": 1}
    newest_first = json_of(client.get(f"{CATEGORIES}?sort=-created_at&per_page=2"))
    assert [c["slug"] for c in newest_first["data"]] == ["mugs", "books"]
    assert client.get(f"{CATEGORIES}?sort=slug").status_code == 422


def test_unknown_category_is_404(client: FlaskClient) -> None:
    assert client.get(f"{CATEGORIES}/nope").status_code == 404
    assert client.get(f"{CATEGORIES}/01900000-0000-7000-8000-000000000000").status_code == 404
