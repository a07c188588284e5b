"""The catalog in the served OpenAPI document: paths, bearer security on writes, money."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import json_of


def test_catalog_paths_are_documented(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    paths = spec["paths"]
    products, item = paths["/api/v1/products"], paths["/api/v1/products/{id_or_slug}"]
    assert set(products) >= {"get", "post"} and set(item) >= {"get", "put", "patch", "delete"}
    assert set(paths["/api/v1/categories"]) >= {"get", "post"}

    writes = [products["post"], item["put"], item["patch"], item["delete"], paths["/api/v1/categories"]["post"]]
    for operation in writes:
        assert operation["security"] == [{"bearerAuth": []}], operation["summary"]
        assert {"401", "403"} <= set(operation["responses"])
    for operation in (products["get"], item["get"], paths["/api/v1/categories"]["get"]):
        assert "security" not in operation
    for operation in (item["put"], item["patch"], item["delete"]):
        assert "412" in operation["responses"]
        assert "If-Match" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert "304" in item["get"]["responses"]
    assert products["post"]["summary"].startswith("Create a product")

    names = {p["name"] for p in products["get"]["parameters"]}
    assert names >= {"q", "category", "min_price", "max_price", "in_stock", "is_active", "sort", "fields"}
    assert names >= {"page", "per_page", "cursor", "limit"}


def test_money_is_documented_as_a_decimal_string(client: FlaskClient) -> None:
    schemas = json_of(client.get("/api/v1/openapi.json"))["components"]["schemas"]
    for name in ("Product", "ProductCreate", "ProductUpdate"):
        price = schemas[name]["properties"]["price"]
        assert (price["type"], price["format"]) == ("string", "decimal"), name
    assert "null" in schemas["Product"]["properties"]["compare_at_price"]["type"]
    assert set(schemas["ProductCreate"]["required"]) == {"sku", "name", "price", "stock"}
    assert "required" not in schemas["ProductUpdate"]


def test_public_reads_that_read_a_sent_token_declare_its_401(client: FlaskClient) -> None:
    """Anyone may list and read products and fetch an image; a token sent is read (staff
    see more), so a bad or expired one is a 401, which the document now declares."""
    spec = json_of(client.get("/api/v1/openapi.json"))
    paths = spec["paths"]
    for path in ("/api/v1/products", "/api/v1/products/{id_or_slug}", "/api/v1/uploads/{upload_id}/content"):
        operation = paths[path]["get"]
        assert "401" in operation["responses"], path
        assert "security" not in operation  # anonymous clients call it (openapi-python-client: a plain Client)
    bad = client.get("/api/v1/products?per_page=1", headers={"Authorization": "Bearer garbage.token.here"})
    assert bad.status_code == 401 and json_of(bad)["error"]["code"] == "UNAUTHORIZED"
