"""Refresh-token sessions as a mobile client lives them: an answer lost on the way (the
reuse grace), and a session kept alive by use."""

from __future__ import annotations

import math
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth.models import AuthSession
from app.auth.tokens import claims_of
from app.db import db, utcnow
from tests.conftest import json_of
from tests.factories import bearer, create_user

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"


def rotate(client: FlaskClient, refresh_token: str) -> dict[str, Any]:
    response = client.post(REFRESH, headers=bearer(refresh_token))
    assert response.status_code == 200, response.get_data(as_text=True)
    pair: dict[str, Any] = json_of(response)["data"]
    return pair


def refresh_claims(app: Flask, pair: dict[str, Any]) -> tuple[str, int]:
    """The jti and expiry of a pair's refresh token."""
    with app.app_context():
        claims = claims_of(pair["refresh_token"])
    return claims["jti"], claims["exp"]


def session_row(app: Flask, session_id: str) -> AuthSession:
    with app.app_context():
        row = db.session.get(AuthSession, uuid.UUID(session_id))
        assert row is not None
        db.session.expunge(row)
        return row


def move_rotation_back(app: Flask, session_id: str, seconds: float) -> None:
    """As if the session's last rotation happened ``seconds`` earlier."""
    with app.app_context():
        row = db.session.get(AuthSession, uuid.UUID(session_id))
        assert row is not None and row.rotated_at is not None
        row.rotated_at -= timedelta(seconds=seconds)
        db.session.commit()


def assert_revoked(client: FlaskClient, pair: dict[str, Any]) -> None:
    for response in (
        client.post(REFRESH, headers=bearer(pair["refresh_token"])),
        client.get(ME, headers=bearer(pair["access_token"])),
    ):
        assert response.status_code == 401, response.get_data(as_text=True)
        assert json_of(response)["error"]["code"] == "TOKEN_REVOKED"


def test_a_refresh_whose_answer_was_lost_is_answered_again_within_the_grace(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    first = rotate(client, user.refresh_token)  # this answer never reaches the app
    again = rotate(client, user.refresh_token)  # the app tries again with the same token

    # The session's current refresh token again (same jti, same expiry), and a fresh access token.
    assert refresh_claims(app, again) == refresh_claims(app, first)
    assert again["access_token"] != first["access_token"]
    # Nothing was revoked, and nothing rotated: both answers work.
    row = session_row(app, user.session_id)
    assert row.revoked_at is None and row.current_jti == refresh_claims(app, first)[0]
    for pair in (first, again):
        assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200

    # The retried answer's token rotates as any current token does; the first answer's copy
    # of it is then the token just spent, within the grace: it gets the new current one.
    third = rotate(client, again["refresh_token"])
    assert refresh_claims(app, rotate(client, first["refresh_token"])) == refresh_claims(app, third)
    assert client.get(ME, headers=bearer(third["access_token"])).status_code == 200


def test_an_older_spent_token_revokes_the_session_even_within_the_grace(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    second = rotate(client, user.refresh_token)
    third = rotate(client, second["refresh_token"])
    # The token spent last, presented again: answered with the current one.
    assert refresh_claims(app, rotate(client, second["refresh_token"])) == refresh_claims(app, third)

    # The one spent before it comes back (stolen and replayed): the whole session ends.
    replay = client.post(REFRESH, headers=bearer(user.refresh_token))
    assert replay.status_code == 401 and json_of(replay)["error"]["code"] == "TOKEN_REVOKED"
    assert session_row(app, user.session_id).revoked_at is not None
    for pair in (second, third):
        assert_revoked(client, pair)


def test_the_grace_lasts_its_seconds_and_0_turns_it_off(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "REFRESH_REUSE_GRACE_SECONDS", 10)
    user = create_user(app)
    second = rotate(client, user.refresh_token)
    move_rotation_back(app, user.session_id, 9)
    assert refresh_claims(app, rotate(client, user.refresh_token)) == refresh_claims(app, second)

    move_rotation_back(app, user.session_id, 2)  # the rotation is 11 seconds old now
    late = client.post(REFRESH, headers=bearer(user.refresh_token))
    assert late.status_code == 401 and json_of(late)["error"]["code"] == "TOKEN_REVOKED"
    assert_revoked(client, second)

    monkeypatch.setitem(app.config, "REFRESH_REUSE_GRACE_SECONDS", 0)
    other = create_user(app)
    spent = rotate(client, other.refresh_token)
    at_once = client.post(REFRESH, headers=bearer(other.refresh_token))
    assert at_once.status_code == 401 and json_of(at_once)["error"]["code"] == "TOKEN_REVOKED"
    assert_revoked(client, spent)


DAY = 24 * 3600


def move_session_back(app: Flask, session_id: str, seconds: float) -> None:
    """As if everything that happened to the session happened ``seconds`` earlier."""
    with app.app_context():
        row = db.session.get(AuthSession, uuid.UUID(session_id))
        assert row is not None
        delta = timedelta(seconds=seconds)
        row.created_at -= delta
        row.last_used_at -= delta
        row.expires_at -= delta
        if row.rotated_at is not None:
            row.rotated_at -= delta
        db.session.commit()


def test_each_refresh_moves_the_session_end_to_the_idle_timeout_from_then(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    logged_in = session_row(app, user.session_id).created_at
    move_session_back(app, user.session_id, 6 * DAY)  # signed in six days ago, not used since

    second = rotate(client, user.refresh_token)
    _, expires = refresh_claims(app, second)
    assert abs(expires - (utcnow() + timedelta(seconds=7 * DAY)).timestamp()) <= 2  # not one day from now
    row = session_row(app, user.session_id)
    assert math.floor(row.expires_at.timestamp()) == expires

    # Two days on (eight after signing in, past the end a login used to have): still alive.
    move_session_back(app, user.session_id, 2 * DAY)
    third = rotate(client, second["refresh_token"])
    assert client.get(ME, headers=bearer(third["access_token"])).status_code == 200
    listed = json_of(client.get("/api/v1/auth/sessions", headers=bearer(third["access_token"])))
    [shown] = listed["data"]
    assert shown["id"] == user.session_id and shown["current"] is True
    login_shown = datetime.fromisoformat(shown["created_at"])  # the login (shown to the millisecond)
    assert abs((login_shown - (logged_in - timedelta(days=8))).total_seconds()) < 0.001
    assert abs((utcnow() - datetime.fromisoformat(shown["last_used_at"])).total_seconds()) < 60  # this refresh

    # Unused for longer than the idle timeout: over, as before.
    move_session_back(app, user.session_id, 7 * DAY + 1)
    other = json_of(client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password}))
    listed = json_of(client.get("/api/v1/auth/sessions", headers=bearer(other["data"]["access_token"])))
    assert listed["meta"]["total"] == 1 and user.session_id not in [s["id"] for s in listed["data"]]
    late = client.post(REFRESH, headers=bearer(third["refresh_token"]))
    assert late.status_code == 401 and json_of(late)["error"]["code"] == "TOKEN_REVOKED"  # the session row is over


def test_a_session_ends_at_its_absolute_cap_however_often_it_is_used(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = create_user(app)
    cap = app.config["SESSION_MAX_SECONDS"]
    assert cap == 90 * DAY
    # Signed in 90 days ago less two seconds, used every day since.
    move_session_back(app, user.session_id, cap - 2)
    with app.app_context():
        row = db.session.get(AuthSession, uuid.UUID(user.session_id))
        assert row is not None
        row.expires_at = utcnow() + timedelta(days=6)
        db.session.commit()
    ends = session_row(app, user.session_id).created_at + timedelta(seconds=cap)

    second = rotate(client, user.refresh_token)
    _, expires = refresh_claims(app, second)
    assert expires == math.floor(ends.timestamp())  # the cap, not seven days from now
    assert session_row(app, user.session_id).expires_at == ends
    third = rotate(client, second["refresh_token"])  # another refresh cannot move it either
    assert refresh_claims(app, third)[1] == expires

    # Past the cap (a second or two away: waited for), the refresh fails as an expired one does.
    while time.time() <= expires:
        time.sleep(0.1)
    refused = client.post(REFRESH, headers=bearer(third["refresh_token"]))
    assert refused.status_code == 401 and json_of(refused)["error"]["code"] == "TOKEN_EXPIRED"

    # A cap shorter than the idle timeout bounds a fresh login's refresh token too.
    monkeypatch.setitem(app.config, "SESSION_MAX_SECONDS", 3600)
    login = client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
    with app.app_context():
        claims = claims_of(json_of(login)["data"]["refresh_token"])
    assert 3599 <= claims["exp"] - claims["iat"] <= 3600
