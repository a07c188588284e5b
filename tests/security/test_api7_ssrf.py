"""API7:2023 Server Side Request Forgery.

The API never fetches a URL a client chose: files arrive by upload (the client pushes
them), products point at uploads by id, and links the API writes start from
PUBLIC_BASE_URL. These tests keep it that way.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import SERVED_BASE_URL, json_of
from tests.factories import create_user


def _request_properties(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every property of every request body (nested schemas included)."""
    found: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if ref not in seen:
                    seen.add(ref)
                    walk(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])
                return
            for name, prop in (node.get("properties") or {}).items():
                found.append((name, prop))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for ops in spec["paths"].values():
        for op in ops.values():
            if isinstance(op, dict):  # not a path's shared "parameters"
                walk(op.get("requestBody", {}))
    return found


def test_no_request_schema_takes_a_url(client: FlaskClient) -> None:
    properties = _request_properties(json_of(client.get("/api/v1/openapi.json")))
    assert len(properties) > 20
    assert [name for name, prop in properties if prop.get("format") in {"uri", "url", "uri-reference"}] == []
    assert [name for name, _ in properties if any(word in name.lower() for word in ("url", "uri", "webhook"))] == []


def test_a_product_image_is_an_upload_id_not_a_url(app: Flask, client: FlaskClient) -> None:
    staff = create_user(app, role="staff")
    for target in ("http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "//internal/admin"):
        body = {"sku": "IMG-1", "name": "Lamp", "price": "10.00", "stock": 1, "image_upload_id": target}
        response = client.post("/api/v1/products", json=body, headers=staff.headers)
        assert response.status_code == 422
        assert "image_upload_id" in {d["field"] for d in json_of(response)["error"]["details"]}


def test_mail_links_come_from_public_base_url(
    app: Flask,
    client: FlaskClient,
    mailbox,
    run_jobs,  # type: ignore[no-untyped-def]
) -> None:
    body = {"email": "ann@example.com", "password": "Sturdy-Passphrase-7", "full_name": "Ann Lee"}
    client.post(
        "/api/v1/auth/register", json=body, headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    )
    run_jobs()
    [mail] = mailbox.to("ann@example.com")
    text = mailbox.text_of(mail)
    # PUBLIC_BASE_URL is unset in the tests: the address served (the test client's), never the Host header.
    assert f"{SERVED_BASE_URL}/account/verify-email?token=" in text and "evil" not in text
