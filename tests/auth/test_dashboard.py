"""/admin/rq: the RQ dashboard, for admins only (its security cases: tests/security)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import SERVICES, json_of
from tests.factories import create_user
from tests.security.support import admin_sign_in


def test_dashboard_is_for_admins_only(app: Flask, client: FlaskClient) -> None:
    admin, staff = create_user(app, role="admin"), create_user(app, role="staff")
    if not SERVICES:
        response = client.get("/admin/rq", headers=admin.headers)
        assert response.status_code == 503
        assert "REDIS_URL" in json_of(response)["error"]["message"]
        return
    anonymous = client.get("/admin/rq/")
    assert anonymous.status_code == 303
    assert anonymous.headers["Location"] == "/admin/login?next=/admin/rq/"
    assert client.get("/admin/rq/0/data/queues.json").status_code == 401
    assert client.get("/admin/rq/", headers=staff.headers).status_code == 403

    signed_in = admin_sign_in(client, admin.email, admin.password, data={"next": "/admin/rq/0/view/workers"})
    assert signed_in.headers["Location"] == "/admin/rq/0/view/workers"
    page = client.get("/admin/rq/")
    assert page.status_code == 200
    assert "RQ" in page.get_data(as_text=True)
    client.post("/api/v1/auth/password/forgot", json={"email": admin.email})  # queues a mail job
    queues = client.get("/admin/rq/0/data/queues.json")
    assert queues.status_code == 200
    mail = next(q for q in queues.get_json()["queues"] if q["name"] == "mail")
    assert mail["count"] == 1
    # API clients may use an admin's access token instead.
    assert client.get("/admin/rq/0/data/queues.json", headers=admin.headers).status_code == 200


def test_the_sign_in_only_sends_you_back_into_the_dashboard(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    targets = (
        "https://evil.example/",
        "//evil.example/admin/rq/",
        "/admin/rq/..//\\evil",
        "/api/v1/users",
        "/admin/rq/\r\nSet-Cookie: x=1",  # a header of its own in the redirect: was a 500
        "/admin/rq/ queues",
    )
    for target in targets:
        response = admin_sign_in(client, admin.email, admin.password, data={"next": target})
        assert response.headers["Location"] == "/admin/rq/", target


@pytest.mark.services
def test_compacting_an_empty_queue_is_done_not_a_redis_error(app: Flask, client: FlaskClient) -> None:
    # RQ's compact renames the queue's list, which Redis refuses when there is none: the
    # dashboard answered 503 ("redis unavailable") for a queue with nothing in it.
    admin = create_user(app, role="admin")
    empty = client.post("/admin/rq/queue/imports/compact", headers=admin.headers)
    assert (empty.status_code, empty.get_json()) == (200, {"status": "OK"})
    client.post("/api/v1/auth/password/forgot", json={"email": admin.email})  # queues a mail job
    full = client.post("/admin/rq/queue/mail/compact", headers=admin.headers)
    assert (full.status_code, full.get_json()) == (200, {"status": "OK"})
    queues = client.get("/admin/rq/0/data/queues.json", headers=admin.headers).get_json()["queues"]
    assert next(q["count"] for q in queues if q["name"] == "mail") == 1  # compacting keeps a live job


def test_a_sign_in_refused_for_its_rate_is_a_page(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    statuses = [admin_sign_in(client, admin.email, "Wrong-Passphrase-0").status_code for _ in range(30)]
    assert 429 in statuses
    refused = admin_sign_in(client, admin.email, "Wrong-Passphrase-0")
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert "Too many attempts" in refused.get_data(as_text=True)


@pytest.mark.services
@pytest.mark.parametrize(
    "path",
    [
        "/admin/rq/0/view/job/mail-expired",  # a finished job's result expires after minutes
        "/admin/rq/0/data/job/mail-expired.json",
        "/admin/rq/1/data/queues.json",  # there is one instance
        "/admin/rq/0/data/jobs/mail/bogus/8/asc/1.json",
        "/admin/rq/0/data/jobs/mail/failed/0/asc/1.json",
        "/admin/rq/0/data/jobs/mail/failed/abc/asc/1.json",
    ],
)
def test_what_the_dashboard_does_not_hold_is_not_found_not_an_error(app: Flask, client: FlaskClient, path: str) -> None:
    admin = create_user(app, role="admin")
    response = client.get(path, headers=admin.headers)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    if path.endswith(".json"):
        assert json_of(response)["error"]["code"] == "NOT_FOUND"
    else:
        assert response.mimetype == "text/html" and "No such job" in response.get_data(as_text=True)


@pytest.mark.services
@pytest.mark.parametrize("error", [KeyError("k"), ValueError("v"), ZeroDivisionError()])
def test_outside_the_dashboard_such_errors_stay_internal_errors(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """The dashboard's not-found mapping is the dashboard's alone: the same exceptions
    anywhere else are what any unexpected error is (logged, the 500 envelope)."""
    from app.products import reads

    def broken(**kwargs: object) -> None:
        raise error

    monkeypatch.setattr(reads, "list_categories", broken)
    response = client.get("/api/v1/categories")
    assert response.status_code == 500
    assert json_of(response)["error"]["code"] == "INTERNAL_ERROR"
