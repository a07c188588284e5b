"""API10:2023 Unsafe Consumption of APIs.

What other systems hand us (a proxy's X-Forwarded-For, a job's exception text shown by
a third-party dashboard, a name that ends up in mail) is validated or escaped before
anyone relies on it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import redis_queues
from tests.conftest import json_of
from tests.factories import create_user
from tests.security.support import LOGIN, admin_sign_in
from tests.support.mailbox import Mailbox

REGISTER = "/api/v1/auth/register"
PAYLOAD = "<img/src=x/onerror=alert(1)>"


def register(client: FlaskClient, **fields: str):  # type: ignore[no-untyped-def]
    body = {"email": "ann@example.com", "password": "Sturdy-Passphrase-7", "full_name": "Ann Lee", **fields}
    return client.post(REGISTER, json=body)


@pytest.mark.parametrize(
    "email",
    [
        f'"{PAYLOAD}"@victim.invalid',  # quoted local part: how the markup got into a mail job
        "ann(comment)@example.com",
        "ann@[127.0.0.1]",
        "ann@@example.com",
        "ann@example",
        "a" * 245 + "@example.com",  # 257 characters
        "ann\n@example.com",
    ],
)
def test_only_plain_email_addresses_are_accepted(client: FlaskClient, email: str) -> None:
    response = register(client, email=email)
    assert response.status_code == 422
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["email"]


def test_plain_addresses_still_work(client: FlaskClient) -> None:
    for email in ("o'brien+shop@mail.example.co.uk", "x_y.z@xn--bcher-kva.example"):
        assert register(client, email=email).status_code == 201, email


@pytest.mark.parametrize(
    "name",
    [
        "Ann\nVisit our prize page",
        "Ann\r\nBcc: everyone@example.com",
        "Ann\u2028Lee",
        "Ann\tLee",
        "Ann\u200bLee",
        "Claim it at https://evil.example",
        "see www.evil.example",
    ],
)
def test_a_name_is_one_line_of_printable_text(client: FlaskClient, name: str) -> None:
    response = register(client, full_name=name)
    assert response.status_code == 422
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["full_name"]


def test_the_welcome_mail_greets_the_name_as_given(
    client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    assert register(client, full_name="  Ann-Marie O'Neil  ").status_code == 201
    run_jobs()
    [mail] = mailbox.to("ann@example.com")
    assert Mailbox.text_of(mail).splitlines()[0] == "Hello Ann-Marie O'Neil,"


@pytest.mark.parametrize("forwarded", ["<script>alert(1)</script>", "1" * 100, "203.0.113.5, 10.0.0.1", "unknown"])
def test_an_address_that_is_not_one_is_never_stored(app: Flask, client: FlaskClient, forwarded: str) -> None:
    """What ProxyFix hands over from X-Forwarded-For is client-controlled text: it was
    echoed by GET /auth/sessions, and over 45 characters it made login fail with a 422."""
    user = create_user(app)
    login = client.post(
        LOGIN, json={"email": user.email, "password": user.password}, environ_base={"REMOTE_ADDR": forwarded}
    )
    assert login.status_code == 200, login.get_data(as_text=True)
    sessions = json_of(client.get("/api/v1/auth/sessions", headers=user.headers))["data"]
    assert {s["ip"] for s in sessions} == {None}


def test_a_valid_address_is_stored_normalised(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    client.post(
        LOGIN, json={"email": user.email, "password": user.password}, environ_base={"REMOTE_ADDR": "2001:DB8::0:1"}
    )
    sessions = json_of(client.get("/api/v1/auth/sessions", headers=user.headers))["data"]
    assert "2001:db8::1" in {s["ip"] for s in sessions}


def test_x_forwarded_for_does_not_pick_the_address_by_default(app: Flask, client: FlaskClient) -> None:
    """Rotating X-Forwarded-For evaded the per-IP login limit when one hop was trusted
    by default; no proxy is trusted unless PROXY_FIX_X_FOR says so."""
    statuses = [
        client.post(
            LOGIN,
            json={"email": f"user{n}@example.com", "password": "Wrong-Password-99"},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        ).status_code
        for n in range(21)
    ]
    assert statuses == [401] * 20 + [429]


@pytest.mark.services
def test_the_dashboard_shows_job_text_escaped(app: Flask, client: FlaskClient, run_jobs: Callable[[], int]) -> None:
    """rq-dashboard 0.9.0 rendered a failed job's description and exc_info as HTML."""
    from tests.support.widgets import fail_always

    with app.app_context():
        job = redis_queues.queue("mail").enqueue(fail_always, PAYLOAD)
    run_jobs()
    admin = create_user(app, role="admin")
    admin_sign_in(client, admin.email, admin.password)
    data = client.get(f"/admin/rq/0/data/job/{job.id}.json").get_json()
    assert PAYLOAD in data["exc_info"] and PAYLOAD in data["description"]  # the data is what it is

    page = client.get(f"/admin/rq/0/view/job/{job.id}").get_data(as_text=True)
    template = page.split('<script name="job-info" type="text/template">', 1)[1].split("</script>", 1)[0]
    assert "<%- d.exc_info %>" in template and "<%- d.description %>" in template
    assert "<%=" not in template  # Underscore's unescaped interpolation, nowhere


@pytest.mark.services
def test_the_dashboard_shows_workers_escaped_and_without_job_arguments(app: Flask, client: FlaskClient) -> None:
    """rq-dashboard 0.9.0's workers page rendered a running job's call string (its
    arguments: an address anyone may type into the reset form) as HTML."""
    admin = create_user(app, role="admin")
    admin_sign_in(client, admin.email, admin.password)
    page = client.get("/admin/rq/0/view/workers")
    assert page.status_code == 200
    template = page.get_data(as_text=True).split('<script name="worker-row" type="text/template">', 1)[1]
    template = template.split("</script>", 1)[0]
    assert "<%- d.current_job.description || d.current_job.job_id %>" in template
    assert "<%=" not in template and "call_string" not in template
