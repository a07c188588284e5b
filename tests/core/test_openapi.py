"""The served OpenAPI document: 3.1, the error envelope, money as strings, bearer auth."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import json_of


def test_openapi_document(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    # The error envelope is the documented error schema.
    error = schemas["Error"]
    assert error["required"] == ["error"]
    body = schemas["ErrorBody"]["properties"]
    assert set(body) == {"code", "message", "details", "request_id"}
    default_error = spec["components"]["responses"]["DEFAULT_ERROR"]
    assert default_error["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    # Money is a string with a decimal format, never a number.
    assert schemas["Widget"]["properties"]["price"]["type"] == "string"
    assert schemas["Widget"]["properties"]["price"]["format"] == "decimal"
    # Success responses are documented inside the envelope.
    get_one = spec["paths"]["/api/v1/_test/widgets/{widget_id}"]["get"]
    ref = get_one["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/WidgetEnvelope")
    listed = spec["paths"]["/api/v1/_test/widgets"]["get"]["responses"]["200"]
    list_ref = listed["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schemas[list_ref]["properties"]) == {"data", "meta"}
    names = {p["name"] for p in spec["paths"]["/api/v1/_test/widgets"]["get"]["parameters"]}
    assert {"page", "per_page", "cursor", "limit", "sort"} <= names


def test_docs_ui_is_served(client: FlaskClient) -> None:
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert "swagger" in response.get_data(as_text=True).lower()


def test_every_reference_resolves(client: FlaskClient) -> None:
    import json
    import re

    spec = json_of(client.get("/api/v1/openapi.json"))
    refs = set(re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', json.dumps(spec)))
    assert refs
    missing = sorted(f"{kind}/{name}" for kind, name in refs if name not in spec["components"].get(kind, {}))
    assert missing == []
