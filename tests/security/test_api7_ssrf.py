"""API7:2023 Server Side Request Forgery.

The API never fetches a URL a client chose: files arrive by upload (the client pushes
them), products point at uploads by id, and links the API writes start from
PUBLIC_BASE_URL. These tests keep it that way.
"""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import create_user


def test_no_request_schema_takes_a_url(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    text = json.dumps(spec["components"]["schemas"])
    assert '"format": "uri"' not in text and '"format": "url"' not in text
    names = [
        name
        for schema in spec["components"]["schemas"].values()
        for name, prop in schema.get("properties", {}).items()
        if not prop.get("readOnly") and ("url" in name.lower() or "uri" in name.lower() or "webhook" in name.lower())
    ]
    assert names == []


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
    assert "http://localhost/account/verify-email?token=" in text and "evil" not in text
