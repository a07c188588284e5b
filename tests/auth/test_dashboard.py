"""/admin/rq: the RQ dashboard, for admins only."""

from __future__ import annotations

import base64

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import SERVICES, json_of
from tests.factories import create_user


def basic(email: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def test_dashboard_is_for_admins_only(app: Flask, client: FlaskClient) -> None:
    admin, staff = create_user(app, role="admin"), create_user(app, role="staff")
    if not SERVICES:
        response = client.get("/admin/rq", headers=admin.headers)
        assert response.status_code == 503
        assert "REDIS_URL" in json_of(response)["error"]["message"]
        return
    anonymous = client.get("/admin/rq/")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/admin/rq/", headers=basic(admin.email, "wrong-password")).status_code == 401
    assert client.get("/admin/rq/", headers=basic("nobody@example.com", admin.password)).status_code == 401
    assert client.get("/admin/rq/", headers=basic(staff.email, staff.password)).status_code == 403
    assert client.get("/admin/rq/", headers=staff.headers).status_code == 403
    page = client.get("/admin/rq/", headers=basic(admin.email, admin.password))
    assert page.status_code == 200
    assert "RQ" in page.get_data(as_text=True)
    client.post("/api/v1/auth/password/forgot", json={"email": admin.email})  # queues a mail job
    queues = client.get("/admin/rq/0/data/queues.json", headers=admin.headers)
    assert queues.status_code == 200
    mail = next(q for q in queues.get_json()["queues"] if q["name"] == "mail")
    assert mail["count"] == 1
