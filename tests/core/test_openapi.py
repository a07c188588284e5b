"""The served OpenAPI document: 3.1, the error envelope, money as strings, bearer auth."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from app.schema import WHITESPACE
from tests.conftest import json_of
from tests.factories import AuthedUser


def test_openapi_document(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    # The error envelope is the documented error schema; everything in it is always sent.
    error = schemas["ErrorResponse"]
    assert error["required"] == ["error"]
    body = schemas["ErrorBody"]
    assert body["required"] == ["code", "message", "details", "request_id"] == list(body["properties"])
    assert schemas["ErrorDetail"]["required"] == ["field", "message"]  # context: only when there is some
    default_error = spec["components"]["responses"]["DEFAULT_ERROR"]
    assert default_error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    # Money is a string with a decimal format, never a number.
    assert schemas["Widget"]["properties"]["price"]["type"] == "string"
    assert schemas["Widget"]["properties"]["price"]["format"] == "decimal"
    # Success responses are documented inside the envelope.
    get_one = spec["paths"]["/api/v1/_test/widgets/{widget_id}"]["get"]
    ref = get_one["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/WidgetEnvelope")
    assert schemas["WidgetEnvelope"]["required"] == ["data"]
    listed = spec["paths"]["/api/v1/_test/widgets"]["get"]["responses"]["200"]
    list_ref = listed["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schemas[list_ref]["required"] == ["data", "meta"] == list(schemas[list_ref]["properties"])
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


# API.md's endpoints (auth, users, catalog, orders) and the statuses each must document.
CONTRACT = {
    ("post", "/api/v1/auth/register"): {"201", "400", "422", "429"},
    ("post", "/api/v1/auth/login"): {"200", "401", "422", "423", "429"},
    ("post", "/api/v1/auth/refresh"): {"200", "401", "429"},
    ("post", "/api/v1/auth/logout"): {"204", "401"},
    ("post", "/api/v1/auth/verify-email"): {"204", "422", "429"},
    ("post", "/api/v1/auth/password/forgot"): {"202", "422", "429"},
    ("post", "/api/v1/auth/password/reset"): {"204", "422", "429"},
    ("get", "/api/v1/auth/sessions"): {"200", "401"},
    ("delete", "/api/v1/auth/sessions/{session_id}"): {"204", "401", "404"},
    ("post", "/api/v1/auth/logout-all"): {"204", "401"},
    ("get", "/api/v1/users/me"): {"200", "401"},
    ("patch", "/api/v1/users/me"): {"200", "401", "422"},
    ("get", "/api/v1/users"): {"200", "401", "403"},
    ("get", "/api/v1/users/{user_id}"): {"200", "401", "403", "404"},
    ("patch", "/api/v1/users/{user_id}"): {"200", "401", "403", "404", "409", "422"},
    ("delete", "/api/v1/users/{user_id}"): {"204", "401", "403", "404", "409"},
    ("get", "/api/v1/products"): {"200", "422"},
    ("post", "/api/v1/products"): {"201", "400", "401", "403", "409", "422"},
    ("get", "/api/v1/products/{id_or_slug}"): {"200", "304", "404"},
    ("put", "/api/v1/products/{id_or_slug}"): {"200", "401", "403", "404", "409", "412", "422"},
    ("patch", "/api/v1/products/{id_or_slug}"): {"200", "401", "403", "404", "409", "412", "422"},
    ("delete", "/api/v1/products/{id_or_slug}"): {"204", "401", "403", "404", "412"},
    ("get", "/api/v1/categories"): {"200"},
    ("post", "/api/v1/categories"): {"201", "401", "403", "409", "422"},
    ("post", "/api/v1/orders"): {"201", "401", "403", "409", "422"},
    ("get", "/api/v1/orders"): {"200", "401"},
    ("get", "/api/v1/orders/{order_id}"): {"200", "401", "404"},
    ("post", "/api/v1/orders/{order_id}/pay"): {"200", "401", "404", "409"},
    ("post", "/api/v1/orders/{order_id}/cancel"): {"200", "401", "404", "409"},
    ("post", "/api/v1/orders/{order_id}/ship"): {"200", "401", "403", "404", "409"},
    ("post", "/api/v1/orders/{order_id}/deliver"): {"200", "401", "403", "404", "409"},
    ("get", "/api/v1/orders/{order_id}/events"): {"200", "401", "404", "422"},
    ("get", "/api/v1/products/imports"): {"200", "401", "403", "422"},
    ("post", "/api/v1/products/imports"): {"202", "400", "401", "403", "422"},
    ("get", "/api/v1/products/imports/{import_id}"): {"200", "401", "403", "404"},
    ("get", "/api/v1/products/imports/{import_id}/errors.csv"): {"200", "401", "403", "404"},
    ("post", "/api/v1/products/exports"): {"202", "401", "403", "422"},
    ("get", "/api/v1/products/exports/{export_id}"): {"200", "401", "403", "404"},
}


def test_the_document_describes_the_contract(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    missing = []
    for (method, path), statuses in CONTRACT.items():
        operation = spec["paths"].get(path, {}).get(method)
        if operation is None:
            missing.append(f"{method.upper()} {path}")
            continue
        absent = statuses - set(operation["responses"])
        if absent:
            missing.append(f"{method.upper()} {path}: {sorted(absent)}")
        if {"401", "403"} & statuses and path != "/api/v1/auth/login":  # login's 401: bad credentials
            assert operation.get("security") == [{"bearerAuth": []}], path
    assert missing == []
    place = spec["paths"]["/api/v1/orders"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in place["parameters"] if p["in"] == "header"}
    assert "Idempotent-Replayed" in place["responses"]["201"]["headers"]


def test_every_operation_documents_what_any_request_to_it_may_get(client: FlaskClient) -> None:
    """An unknown query parameter or body field (422), a rate limit (429); with a body, one
    that is not JSON (400) or too large (413); with an id in its path, an unknown id (404)."""
    spec = json_of(client.get("/api/v1/openapi.json"))
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":  # (the path's own, shared by its operations)
                continue
            expected = {"422", "429"}
            if "requestBody" in operation:
                expected |= {"400", "413"}
            if "{" in path:
                expected.add("404")
            absent = expected - set(operation["responses"])
            if absent:
                missing.append(f"{method.upper()} {path}: {sorted(absent)}")
    assert missing == []


def _patterns(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        return found.union(*(_patterns(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_patterns(value) for value in node))
    return set()


def _bare_dot(pattern: str) -> bool:
    """Whether ``pattern`` has a ``.`` outside a character class (Python's matches all but
    LF; ECMA-262's neither CR nor U+2028/U+2029)."""
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "." and not in_class:
            return True
    return False


def test_every_pattern_means_to_a_client_what_it_means_to_the_server(client: FlaskClient, staff: AuthedUser) -> None:
    """The document's patterns are ECMA-262 (a client's validator); the server checks with
    Python's ``re``. Classes whose sets differ between the two (``\\d \\w \\s \\b`` and their
    negations: Unicode in Python; ASCII, or another whitespace, in ECMA-262) and a bare ``.``
    are in none of them, and what is blank is Python's whitespace, spelled out."""
    patterns = _patterns(json_of(client.get("/api/v1/openapi.json")))
    assert len(patterns) >= 10
    assert not [p for p in patterns if re.search(r"\\[dDwWsSbB]", p) or _bare_dot(p)]
    assert {chr(c) for c in range(0x110000) if re.fullmatch(f"[{WHITESPACE}]", chr(c))} == {
        chr(c) for c in range(0x110000) if chr(c).isspace()
    }
    # Where the two sets of whitespace differ, the server and the pattern answer alike: an
    # information separator (whitespace to Python, not to ECMA-262) is blank; a byte order
    # mark (whitespace to ECMA-262 only) is not.
    name_pattern = next(p for p in patterns if p.startswith("^[^\\x00]*[^\\x00"))
    for name, status in (("\u001c", 422), ("\u0085", 422), ("\ufeff", 201)):
        body = {"name": name}
        answer = client.post("/api/v1/categories", json=body, headers=staff.headers)
        assert answer.status_code == status, (repr(name), answer.get_json())
        assert (re.fullmatch(name_pattern, name) is not None) == (status == 201)
    # Text whose pattern has more to say than "not blank": checked as sent, not once trimmed.
    direct = json_of(client.get("/api/v1/openapi.json"))["components"]["schemas"]["DirectUploadCreate"]["properties"]
    for field, value in (("filename", "mug.jpg\n"), ("filename", "\tmug.jpg"), ("content_type", "text/csv;\r")):
        body = {"purpose": "import", "filename": "mug.csv", "size": 10, "content_type": "text/csv", field: value}
        answer = client.post("/api/v1/uploads/direct", json=body, headers=staff.headers)
        assert answer.status_code == 422, (field, repr(value), answer.get_json())
        assert re.fullmatch(direct[field]["pattern"], value) is None


def test_the_conditions_an_operation_answers_are_parameters_a_client_can_send(client: FlaskClient) -> None:
    """A 304 answers If-None-Match, a 412 If-Match: a client generated from the document
    must be able to send them (its types admit no header that is not declared)."""
    spec = json_of(client.get("/api/v1/openapi.json"))
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            for status, header in (("304", "If-None-Match"), ("412", "If-Match")):
                if status in operation["responses"] and header not in headers:
                    missing.append(f"{method.upper()} {path}: {header}")
    assert missing == []


def test_json_in_a_response_is_described_as_json_never_as_a_string_of_bytes(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    binary = [
        f"{method.upper()} {path} {status}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method != "parameters"
        for status, response in operation["responses"].items()
        if isinstance(response, dict)
        and response.get("content", {}).get("application/json", {}).get("schema", {}).get("format") == "binary"
    ]
    assert binary == []
