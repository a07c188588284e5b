"""The conventions that make the OpenAPI document exact enough for a generated client."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.openapi import Direction, declare
from app.schema import Schema
from tests.conftest import json_of
from tests.factories import create_user

DOMAINS = {"auth", "users", "products", "orders", "uploads", "testing"}


def _spec(client: FlaskClient) -> dict[str, Any]:
    spec: dict[str, Any] = json_of(client.get("/api/v1/openapi.json"))
    return spec


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items() if "responses" in op
    ]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = spec["components"][kind][name]
    return node


def test_every_operation_has_a_unique_snake_case_id_and_one_domain_tag(client: FlaskClient) -> None:
    operations = _operations(_spec(client))
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", i) for i in ids), ids
    assert {"list_products", "place_order", "cancel_order", "refresh_tokens", "list_order_events"} <= set(ids)
    for _, path, op in operations:
        assert len(op["tags"]) == 1 and op["tags"][0] in DOMAINS, path


def test_response_schemas_require_every_field_they_always_send(client: FlaskClient) -> None:
    schemas = _spec(client)["components"]["schemas"]
    for name in ("Product", "Order", "OrderLine", "OrderEvent", "User", "Session", "Category", "PageMeta"):
        schema = schemas[name]
        assert schema["required"] == list(schema["properties"]), name
    # A nullable field is required and nullable.
    assert "null" in schemas["Order"]["properties"]["paid_at"]["type"]
    assert "paid_at" in schemas["Order"]["required"]
    # Sparse fieldsets: the other representation requires nothing.
    assert "required" not in schemas["ProductFields"]


def test_a_real_response_has_every_required_field(app: Flask, client: FlaskClient) -> None:
    spec = _spec(client)
    admin = create_user(app, role="admin")
    body = json_of(client.get("/api/v1/users/me", headers=admin.headers))
    assert set(body["data"]) == set(spec["components"]["schemas"]["User"]["required"])
    assert set(body) == set(spec["components"]["schemas"]["UserEnvelope"]["required"])


def test_list_metas_follow_the_pagination_style(client: FlaskClient) -> None:
    spec = _spec(client)

    def meta_of(path: str) -> dict[str, Any]:
        ok = spec["paths"][path]["get"]["responses"]["200"]
        envelope = _resolve(spec, ok["content"]["application/json"]["schema"])
        assert envelope["required"] == ["data", "meta"]
        meta: dict[str, Any] = envelope["properties"]["meta"]
        return meta

    both = {"oneOf": [{"$ref": "#/components/schemas/PageMeta"}, {"$ref": "#/components/schemas/CursorMeta"}]}
    assert meta_of("/api/v1/products") == both
    assert meta_of("/api/v1/orders") == both
    assert meta_of("/api/v1/users") == {"$ref": "#/components/schemas/PageMeta"}
    assert meta_of("/api/v1/orders/{order_id}/events") == {"$ref": "#/components/schemas/TotalMeta"}
    schemas = spec["components"]["schemas"]
    assert schemas["CursorMeta"]["required"] == ["limit", "next_cursor", "has_more"]


def test_headers_are_documented_on_the_responses_that_send_them(client: FlaskClient) -> None:
    spec = _spec(client)
    for method, path, op in _operations(spec):
        for status, response in op["responses"].items():
            response = _resolve(spec, response)
            assert "X-Request-ID" in response["headers"], (method, path, status)
            if status == "201":
                assert _resolve(spec, response["headers"]["Location"]).get("required") is True, (method, path)
    lists = spec["paths"]["/api/v1/products"]["get"]["responses"]["200"]["headers"]
    assert {"Link", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(lists)
    security = {"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"}
    assert security | {"Cache-Control"} <= set(lists)
    limited = spec["components"]["responses"]["TOO_MANY_REQUESTS"]["headers"]
    assert _resolve(spec, limited["Retry-After"])["required"] is True
    item = spec["paths"]["/api/v1/products/{id_or_slug}"]["get"]["responses"]
    assert item["200"]["headers"]["ETag"]["required"] is True and "ETag" in item["304"]["headers"]
    # What the outside review found sent but undeclared: a list's 304 carries its Link; a
    # category read its Vary; the errors CSV and an upload's content their disposition.
    paths = spec["paths"]
    for path in ("/api/v1/products", "/api/v1/categories"):
        assert "Link" in paths[path]["get"]["responses"]["304"]["headers"], path
    for path in ("/api/v1/categories", "/api/v1/categories/{id_or_slug}"):
        assert "Vary" in paths[path]["get"]["responses"]["200"]["headers"], path
    csv = paths["/api/v1/products/imports/{import_id}/errors.csv"]["get"]["responses"]["200"]["headers"]
    assert csv["Content-Disposition"]["required"] is True
    content = paths["/api/v1/uploads/{upload_id}/content"]["get"]["responses"]
    assert {"ETag", "Content-Disposition"} <= set(content["200"]["headers"]) and "ETag" in content["304"]["headers"]
    assert "412" in content


def test_rules_are_in_the_schemas(client: FlaskClient) -> None:
    spec = _spec(client)
    schemas = spec["components"]["schemas"]
    assert schemas["Register"]["properties"]["password"]["minLength"] == 12
    sort = next(p for p in spec["paths"]["/api/v1/products"]["get"]["parameters"] if p["name"] == "sort")
    pattern = re.compile(sort["schema"]["pattern"])
    assert pattern.match("-price,name") and not pattern.match("name,-name") and not pattern.match("name,")
    page = next(p for p in spec["paths"]["/api/v1/products"]["get"]["parameters"] if p["name"] == "page")
    assert "cursor" in page["description"] and "422" in page["description"]
    # Optional bodies are optional.
    for method, path in [("patch", "/api/v1/users/me"), ("post", "/api/v1/orders/{order_id}/cancel")]:
        assert spec["paths"][path][method]["requestBody"]["required"] is False
    assert spec["paths"]["/api/v1/products"]["post"]["requestBody"]["required"] is True
    register = spec["paths"]["/api/v1/auth/register"]["post"]
    assert "never stored" in register["description"]


def test_a_schema_cannot_be_both_request_and_response() -> None:
    class Inner(Schema):
        x = ma.fields.String()

    class In(Schema):
        inner = ma.fields.Nested(Inner)

    class Out(Schema):
        inner = ma.fields.List(ma.fields.Nested(Inner))

    declare(In, Direction.REQUEST)
    with pytest.raises(TypeError, match="Inner is used both"):
        declare(Out, Direction.RESPONSE)


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None])
def test_body_booleans_are_json_booleans(app: Flask, client: FlaskClient, value: Any) -> None:
    admin, other = create_user(app, role="admin"), create_user(app)
    response = client.patch(f"/api/v1/users/{other.id}", json={"is_active": value}, headers=admin.headers)
    assert response.status_code == 422
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["is_active"]


@pytest.mark.parametrize(("value", "expected"), [("true", 2), ("1", 2), ("false", 0), ("0", 0)])
def test_query_booleans_take_true_false_1_0(app: Flask, client: FlaskClient, value: str, expected: int) -> None:
    admin = create_user(app, role="admin")
    create_user(app)
    response = client.get(f"/api/v1/users?is_active={value}", headers=admin.headers)
    assert json_of(response)["meta"]["total"] == expected
    assert client.get("/api/v1/users?is_active=yes", headers=admin.headers).status_code == 422


def test_an_unpaginated_list_carries_its_total(app: Flask, client: FlaskClient) -> None:
    from tests.orders.conftest import ADDRESS
    from tests.products.builders import make_product

    customer = create_user(app)
    product = make_product(app, stock=5)
    placed = client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product, "quantity": 1}], "shipping_address": ADDRESS},
        headers=customer.headers,
    )
    order_id = json_of(placed)["data"]["id"]
    client.post(f"/api/v1/orders/{order_id}/pay", headers=customer.headers)
    body = json_of(client.get(f"/api/v1/orders/{order_id}/events", headers=customer.headers))
    assert body["meta"] == {"total": 2} and len(body["data"]) == 2


def test_optional_bodies_may_be_absent(app: Flask, client: FlaskClient) -> None:
    customer = create_user(app)
    response = client.patch("/api/v1/users/me", headers=customer.headers)
    assert response.status_code == 200
