"""ETags from the version: If-None-Match → 304, a stale If-Match → 412 and nothing changes."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.products.builders import PRODUCTS, make_product


def test_get_sends_an_etag_from_id_and_version(app: Flask, client: FlaskClient) -> None:
    product_id = make_product(app, slug="tea")
    for ref in (product_id, "tea"):
        response = client.get(f"{PRODUCTS}/{ref}")
        assert response.headers["ETag"] == f'"{product_id}-v1"'


def test_if_none_match_with_the_current_etag_is_304_without_body(app: Flask, client: FlaskClient) -> None:
    url = f"{PRODUCTS}/{make_product(app)}"
    etag = client.get(url).headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get(url, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.get_data() == b""
        assert response.headers["ETag"] == etag


def test_if_none_match_with_an_old_etag_is_200(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app)}"
    old = client.get(url).headers["ETag"]
    assert client.patch(url, json={"stock": 99}, headers=staff.headers).status_code == 200
    response = client.get(url, headers={"If-None-Match": old})
    assert response.status_code == 200
    assert response.headers["ETag"] != old and json_of(response)["data"]["stock"] == 99


def test_if_none_match_does_not_reveal_hidden_products(app: Flask, client: FlaskClient) -> None:
    url = f"{PRODUCTS}/{make_product(app, is_active=False)}"
    assert client.get(url, headers={"If-None-Match": "*"}).status_code == 404


def test_stale_if_match_is_412_and_changes_nothing(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app, name='Original')}"
    stale = client.get(url).headers["ETag"]
    current = client.patch(url, json={"stock": 7}, headers=staff.headers).headers["ETag"]
    attempts = [
        ("patch", {"name": "Lost update"}),
        ("put", {"sku": "NEW-1", "name": "Lost update", "description": "x", "price": "1.00", "stock": 1}),
        ("delete", None),
    ]
    for method, body in attempts:
        response = getattr(client, method)(url, json=body, headers={**staff.headers, "If-Match": stale})
        assert response.status_code == 412, method
        assert json_of(response)["error"]["code"] == "PRECONDITION_FAILED"
        assert response.headers["ETag"] == current
    product = json_of(client.get(url))["data"]
    assert (product["name"], product["stock"], product["version"]) == ("Original", 7, 2)
    # The ETag it sends is declared on that answer (a client's types read no other header).
    declared = json_of(client.get("/api/v1/openapi.json"))["components"]["responses"]["PRECONDITION_FAILED"]
    assert "ETag" in declared["headers"] and not declared["headers"]["ETag"].get("required")


def test_weak_or_foreign_if_match_does_not_match(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app, stock=0)}"
    etag = client.get(url).headers["ETag"]
    for header in (f"W/{etag}", '"something-else"', "garbage"):
        response = client.patch(url, json={"stock": 1}, headers={**staff.headers, "If-Match": header})
        assert response.status_code == 412, header


def test_current_if_match_is_honoured(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app, stock=0)}"
    etag = client.get(url).headers["ETag"]
    first = client.patch(url, json={"stock": 1}, headers={**staff.headers, "If-Match": f'"nope", {etag}'})
    assert first.status_code == 200 and first.headers["ETag"].endswith('-v2"')
    star = client.patch(url, json={"stock": 2}, headers={**staff.headers, "If-Match": "*"})
    assert star.status_code == 200
    deleted = client.delete(url, headers={**staff.headers, "If-Match": star.headers["ETag"]})
    assert deleted.status_code == 204
    assert client.get(url).status_code == 404


def test_if_match_on_a_missing_product_is_404(client: FlaskClient, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/01900000-0000-7000-8000-000000000000"
    assert client.patch(url, json={"stock": 1}, headers={**staff.headers, "If-Match": "*"}).status_code == 404


def test_created_and_updated_responses_carry_the_new_etag(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app, stock=0)}"
    patched = client.patch(url, json={"stock": 3}, headers=staff.headers)
    assert patched.headers["ETag"] == client.get(url).headers["ETag"]
    assert json_of(patched)["data"]["version"] == 2
