"""GET /auth/sessions shows a device as its owner would recognise it: the client's address
as people write it (whatever form the proxy handed over) and the user agent as it was sent;
rate limits count that same address."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.auth.models import AuthSession
from app.db import db
from tests.conftest import json_of
from tests.factories import AuthedUser, create_user
from tests.security.support import admin_sign_in

LOGIN = "/api/v1/auth/login"
SESSIONS = "/api/v1/auth/sessions"
ZOE = "Zo\u00eb\u2019s iPhone"
# What a WSGI server hands over for those UTF-8 bytes: each byte as a latin-1 character.
ZOE_AS_WSGI_GIVES_IT = ZOE.encode().decode("latin-1")


def sign_in(client: FlaskClient, user: AuthedUser, **environ: str) -> dict[str, str]:
    answer = client.post(LOGIN, json={"email": user.email, "password": user.password}, environ_base=environ)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    pair: dict[str, str] = json_of(answer)["data"]
    return pair


def shown(client: FlaskClient, access_token: str) -> dict[str, object]:
    """The caller's current session as GET /auth/sessions shows it."""
    sessions = json_of(client.get(SESSIONS, headers={"Authorization": f"Bearer {access_token}"}))["data"]
    [current] = [s for s in sessions if s["current"]]
    return dict(current)


@pytest.mark.parametrize(
    ("remote_addr", "ip"),
    [
        ("::ffff:1.2.3.4", "1.2.3.4"),  # an IPv4 client of a dual-stack listener
        ("::ffff:102:304", "1.2.3.4"),
        ("1.2.3.4:5555", "1.2.3.4"),  # X-Forwarded-For with the client's port
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("[::ffff:1.2.3.4]:8080", "1.2.3.4"),
        ("fe80::1%eth0", "fe80::1"),  # a zone is the proxy's interface (or any text): dropped
        ("fe80::1%<b>", "fe80::1"),
    ],
)
def test_the_address_is_shown_as_people_write_it(app: Flask, client: FlaskClient, remote_addr: str, ip: str) -> None:
    user = create_user(app)
    pair = sign_in(client, user, REMOTE_ADDR=remote_addr)
    assert shown(client, pair["access_token"])["ip"] == ip


@pytest.mark.parametrize(
    "remote_addr",
    ["1.2.3.4:", "1.2.3.4:99999", "1.2.3.4:\uff18\uff10", "[1.2.3.4]:80", "[2001:db8::1]443", "2001:db8::1]:80"],
)
def test_what_is_not_an_address_with_a_port_stays_unknown(app: Flask, client: FlaskClient, remote_addr: str) -> None:
    user = create_user(app)
    pair = sign_in(client, user, REMOTE_ADDR=remote_addr)
    assert shown(client, pair["access_token"])["ip"] is None


def test_a_utf8_user_agent_is_shown_as_sent_at_login_and_refresh(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    pair = sign_in(client, user, HTTP_USER_AGENT=ZOE_AS_WSGI_GIVES_IT)
    assert shown(client, pair["access_token"])["user_agent"] == ZOE

    refreshed = client.post(
        "/api/v1/auth/refresh",
        headers={"Authorization": f"Bearer {pair['refresh_token']}"},
        environ_base={"HTTP_USER_AGENT": ("Zo\u00eb\u2019s iPad").encode().decode("latin-1")},
    )
    assert refreshed.status_code == 200
    assert shown(client, json_of(refreshed)["data"]["access_token"])["user_agent"] == "Zo\u00eb\u2019s iPad"


def test_a_user_agent_that_is_not_utf8_is_kept_as_it_came(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    pair = sign_in(client, user, HTTP_USER_AGENT="Caf\u00e9 Browser")  # one latin-1 byte: not UTF-8
    assert shown(client, pair["access_token"])["user_agent"] == "Caf\u00e9 Browser"


def test_the_dashboard_sign_in_stores_the_user_agent_and_address_alike(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    environ = {"HTTP_USER_AGENT": ZOE_AS_WSGI_GIVES_IT, "REMOTE_ADDR": "::ffff:1.2.3.4"}
    assert admin_sign_in(client, admin.email, admin.password, environ_base=environ).status_code == 303
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuthSession.user_agent, AuthSession.ip).where(
                AuthSession.user_id == uuid.UUID(admin.id), AuthSession.user_agent != "pytest"
            )
        ).all()
    assert [tuple(row) for row in rows] == [(ZOE, "1.2.3.4")]


def test_rate_limits_count_the_address_sessions_show(client: FlaskClient) -> None:
    """One client, whichever form its address came in, spends one budget; another
    address has its own."""

    def remaining(remote_addr: str) -> int:
        answer = client.get("/api/v1/categories", environ_base={"REMOTE_ADDR": remote_addr})
        assert answer.status_code == 200
        return int(answer.headers["X-RateLimit-Remaining"])

    first = remaining("1.2.3.4")
    spent = [remaining(a) for a in ("1.2.3.4:5555", "::ffff:1.2.3.4", "[::ffff:1.2.3.4]:443", "1.2.3.4:6666")]
    assert spent == [first - 1, first - 2, first - 3, first - 4]
    assert remaining("5.6.7.8:5555") == first
    assert remaining("[2001:db8::1]:443") == first
    assert remaining("2001:db8::2") == first - 1  # the same /64
