"""Every validation rule of the catalog answers 422 with a detail naming the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.products.builders import CATEGORIES, PRODUCTS, make_product, product_body

MISSING = object()


def fields_of(response: Any) -> set[str]:
    assert response.status_code == 422, response.get_data(as_text=True)
    error = json_of(response)["error"]
    assert error["code"] == "VALIDATION_ERROR"
    return {d["field"] for d in error["details"]}


INVALID_CREATES = [
    # price
    ("price", MISSING),
    ("price", "-0.01"),
    ("price", "1.999"),
    ("price", "abc"),
    ("price", None),
    ("price", True),
    ("price", "10000000000"),
    ("price", 19.99),  # API.md: a decimal string, never a float
    ("price", 5),
    ("price", ""),
    ("price", "1_000"),  # Python's Decimal reads these; a price must be plain ASCII decimal
    ("price", "\u0661\u0662"),
    ("price", "1e3"),
    ("price", " 1.50 "),  # the documented pattern has no room for whitespace
    ("price", "1.500"),
    # compare_at_price
    ("compare_at_price", "-1"),
    ("compare_at_price", "0.001"),
    ("compare_at_price", "19.98"),  # below the default price 19.99
    # stock and threshold
    ("stock", MISSING),
    ("stock", -1),
    ("stock", 1.5),
    ("stock", False),
    ("stock", "3"),
    ("stock", True),
    ("stock", 2**31),
    ("low_stock_threshold", -1),
    ("low_stock_threshold", "5"),
    # sku
    ("sku", MISSING),
    ("sku", "A"),
    ("sku", "-ABC"),
    ("sku", "AB C"),
    ("sku", "ÄBC"),
    ("sku", "A" * 65),
    ("sku", 123),
    ("sku", " AB-1 "),
    # slug
    ("slug", "Bad-Slug"),
    ("slug", "a--b"),
    ("slug", "-a"),
    ("slug", "a_b"),
    ("slug", ""),
    ("slug", "a" * 121),
    ("slug", "01900000-0000-7000-8000-000000000000"),
    # name and description
    ("name", MISSING),
    ("name", ""),
    ("name", "   "),
    ("name", "x" * 201),
    ("description", "x" * 20_001),
    ("description", 5),
    # flags and references
    ("is_active", "maybe"),
    ("is_active", "true"),  # a JSON body's booleans are true and false only
    ("is_active", 1),
    ("is_active", 0),
    ("category_ids", "not-a-list"),
    ("category_ids", ["01900000-0000-7000-8000-000000000000"]),
    ("image_upload_id", "not-a-uuid"),
    ("image_upload_id", "01900000-0000-7000-8000-000000000000"),  # no such upload: never stored dangling
    # unknown fields
    ("currency", "EUR"),
    ("version", 3),
    ("colour", "red"),
]


@pytest.mark.parametrize(("field", "value"), INVALID_CREATES, ids=[f"{f}={v!r}"[:40] for f, v in INVALID_CREATES])
def test_invalid_create_is_422_naming_the_field_and_creates_nothing(
    client: FlaskClient, staff: AuthedUser, field: str, value: Any
) -> None:
    body = product_body()
    if value is MISSING:
        del body[field]
    else:
        body[field] = value
    response = client.post(PRODUCTS, json=body, headers=staff.headers)
    named = fields_of(response)
    assert {n.split(".")[0] for n in named} == {field}
    assert json_of(client.get(PRODUCTS, headers=staff.headers))["meta"]["total"] == 0


def test_invalid_category_id_names_its_position(client: FlaskClient, staff: AuthedUser) -> None:
    response = client.post(PRODUCTS, json=product_body(category_ids=["nope"]), headers=staff.headers)
    assert fields_of(response) == {"category_ids.0"}


def test_several_errors_are_reported_together(client: FlaskClient, staff: AuthedUser) -> None:
    body = {"sku": "x", "name": "", "description": "d", "price": "-1", "stock": -1, "extra": 1}
    response = client.post(PRODUCTS, json=body, headers=staff.headers)
    assert fields_of(response) == {"sku", "name", "price", "stock", "extra"}


@pytest.mark.parametrize(
    ("given", "stored"),
    [("ab-1.x_y", "AB-1.X_Y"), ("9Z", "9Z"), ("a" * 64, "A" * 64)],
)
def test_sku_is_upper_cased(client: FlaskClient, staff: AuthedUser, given: str, stored: str) -> None:
    response = client.post(PRODUCTS, json=product_body(sku=given), headers=staff.headers)
    assert response.status_code == 201
    assert json_of(response)["data"]["sku"] == stored


@pytest.mark.parametrize(("price", "stored"), [("0", "0.00"), ("5", "5.00"), ("19.9", "19.90"), ("0012.50", "12.50")])
def test_money_is_a_decimal_string_both_ways(client: FlaskClient, staff: AuthedUser, price: Any, stored: str) -> None:
    response = client.post(PRODUCTS, json=product_body(price=price), headers=staff.headers)
    assert json_of(response)["data"]["price"] == stored


def test_whole_number_floats_are_integers_as_in_json_schema(client: FlaskClient, staff: AuthedUser) -> None:
    response = client.post(PRODUCTS, json=product_body(stock=337.0, low_stock_threshold=2.0), headers=staff.headers)
    assert response.status_code == 201
    assert json_of(response)["data"]["stock"] == 337


def test_description_is_optional(client: FlaskClient, staff: AuthedUser) -> None:
    body = product_body()
    del body["description"]
    response = client.post(PRODUCTS, json=body, headers=staff.headers)
    assert response.status_code == 201 and json_of(response)["data"]["description"] == ""


def test_compare_at_price_equal_to_price_is_fine(client: FlaskClient, staff: AuthedUser) -> None:
    body = product_body(price="10.00", compare_at_price="10.00")
    assert client.post(PRODUCTS, json=body, headers=staff.headers).status_code == 201


def test_patch_checks_compare_at_price_against_the_stored_price(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    url = f"{PRODUCTS}/{make_product(app, price=Decimal('10.00'), compare_at_price=Decimal('15.00'))}"
    for change in ({"compare_at_price": "9.99"}, {"price": "15.01"}, {"price": "20", "compare_at_price": "19"}):
        response = client.patch(url, json=change, headers=staff.headers)
        assert fields_of(response) == {"compare_at_price"}, change
    product = json_of(client.get(url))["data"]
    assert (product["price"], product["compare_at_price"], product["version"]) == ("10.00", "15.00", 1)
    assert client.patch(url, json={"price": "15.00"}, headers=staff.headers).status_code == 200


def test_patch_rejects_null_for_required_fields(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app)}"
    for field in ("sku", "name", "price", "stock", "is_active", "category_ids"):
        assert fields_of(client.patch(url, json={field: None}, headers=staff.headers)) == {field}


def test_patch_with_unknown_category_changes_nothing(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app, name='Kept')}"
    change = {"name": "Lost", "category_ids": ["01900000-0000-7000-8000-000000000000"]}
    assert fields_of(client.patch(url, json=change, headers=staff.headers)) == {"category_ids"}
    assert json_of(client.get(url))["data"]["name"] == "Kept"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("colour=red", "colour"),
        ("sort=colour", "sort"),
        ("sort=stock", "sort"),
        ("sort=--name", "sort"),
        ("sort=%2Bname", "sort"),
        ("min_price=1_0", "min_price"),
        ("page=100001", "page"),
        ("fields=id,secret", "fields"),
        ("min_price=-1", "min_price"),
        ("max_price=abc", "max_price"),
        ("min_price=10&max_price=5", "max_price"),
        ("in_stock=maybe", "in_stock"),
        ("per_page=101", "per_page"),
        ("limit=0", "limit"),
        ("page=2&limit=5", "cursor"),
        ("cursor=garbage", "cursor"),
        ("q=", "q"),
    ],
)
def test_invalid_list_arguments_are_422_naming_them(client: FlaskClient, query: str, field: str) -> None:
    assert field in fields_of(client.get(f"{PRODUCTS}?{query}"))


def test_single_product_takes_sparse_fields_and_refuses_unknown_parameters(app: Flask, client: FlaskClient) -> None:
    url = f"{PRODUCTS}/{make_product(app)}"
    assert list(json_of(client.get(f"{url}?fields=id,name,price"))["data"]) == ["id", "name", "price"]
    assert fields_of(client.get(f"{url}?bogus=1")) == {"bogus"}
    assert fields_of(client.get(f"{url}?fields=password")) == {"fields"}


def test_is_active_filter_is_refused_for_anonymous_and_customers(client: FlaskClient, customer: AuthedUser) -> None:
    for headers in ({}, customer.headers):
        assert fields_of(client.get(f"{PRODUCTS}?is_active=false", headers=headers)) == {"is_active"}


def test_invalid_category_bodies(client: FlaskClient, staff: AuthedUser) -> None:
    cases = [
        ({}, "name"),
        ({"name": " "}, "name"),
        ({"name": "A", "slug": "Not OK"}, "slug"),
        ({"name": "A", "x": 1}, "x"),
    ]
    for body, field in cases:
        assert fields_of(client.post(CATEGORIES, json=body, headers=staff.headers)) == {field}, body


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (PRODUCTS, {"sku": "NL-1\n"}, "sku"),
        (PRODUCTS, {"slug": "nl-slug\n"}, "slug"),
        (CATEGORIES, {"name": "Newline", "slug": "nl-cat\n"}, "slug"),
    ],
)
def test_a_pattern_holds_for_the_whole_value_a_final_newline_too(
    client: FlaskClient, staff: AuthedUser, path: str, body: dict[str, Any], field: str
) -> None:
    """``$`` in Python's ``re.match`` also matches before a final newline; the patterns the
    OpenAPI document serves (ECMA-262) do not, and neither does the API."""
    sent = {**product_body(), **body} if path == PRODUCTS else body
    assert fields_of(client.post(path, json=sent, headers=staff.headers)) == {field}
