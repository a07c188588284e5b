"""Refresh-token sessions as a mobile client lives them: an answer lost on the way (the
reuse grace), and a session kept alive by use."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth.models import AuthSession
from app.auth.tokens import claims_of
from app.db import db
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
