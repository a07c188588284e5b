"""API9:2023 Improper Inventory Management.

The served OpenAPI document is the inventory: every /api/v1 route is in it, and it says
what each operation can now answer (429 everywhere, 413 wherever a body is taken, 503
where credentials are checked, 423 where a password is).
"""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of

UNDOCUMENTED = {"/api/v1/openapi.json", "/api/v1/docs"}


def _spec(client: FlaskClient) -> dict:  # type: ignore[type-arg]
    spec: dict = json_of(client.get("/api/v1/openapi.json"))  # type: ignore[type-arg]
    return spec


def test_every_api_route_is_documented(app: Flask, client: FlaskClient) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in _spec(client)["paths"].items()
        for method in operations
        if method != "parameters"
    }
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule in UNDOCUMENTED or rule.rule.startswith("/api/v1/docs"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            if (method, path) not in documented:
                missing.append(f"{method} {path}")
    assert missing == []


def test_every_operation_documents_its_rate_limit_and_body_cap(client: FlaskClient) -> None:
    problems = []
    for path, operations in _spec(client)["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            if "429" not in responses:
                problems.append(f"{method} {path}: 429")
            if "requestBody" in operation and "413" not in responses:
                problems.append(f"{method} {path}: 413")
    assert problems == []


def test_the_new_answers_are_documented_where_they_happen(client: FlaskClient) -> None:
    paths = _spec(client)["paths"]
    for path in ("/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/password/forgot", "/api/v1/auth/refresh"):
        assert "503" in paths[path]["post"]["responses"], path
    assert "423" in paths["/api/v1/users/me"]["patch"]["responses"]
    assert "423" in paths["/api/v1/auth/login"]["post"]["responses"]
    assert "409" in paths["/api/v1/orders"]["post"]["responses"]
    register = paths["/api/v1/auth/register"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert register["$ref"].endswith("/Register")
    properties = _spec(client)["components"]["schemas"]["Register"]["properties"]
    assert properties["password"]["minLength"] == 12
    assert properties["email"]["maxLength"] == 254 and properties["email"]["format"] == "email"
