"""Refresh rotation under real concurrency (PostgreSQL, real threads): one token, one
rotation, and the reuse grace for the thread that lost the race."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.auth import service
from app.auth.models import AuthSession
from app.auth.tokens import claims_of
from app.db import db
from tests.conftest import json_of
from tests.factories import bearer, create_user
from tests.support.threads import at_once

pytestmark = pytest.mark.services

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"


def race_refresh(app: Flask, refresh_token: str, n: int) -> list[Any]:
    """Present the same refresh token ``n`` times at the same moment, each from its own thread and client."""
    return at_once(app, lambda client, _: client.post(REFRESH, headers=bearer(refresh_token)), n)


def test_two_concurrent_refreshes_with_one_token_both_get_the_current_token(app: Flask) -> None:
    """Two threads of one app refresh with the same token at once: one rotates, the other
    (the token it sent just spent, within the grace) gets the new current token too. Nothing
    is revoked, and both go on with working tokens of the one current jti."""
    user = create_user(app)
    responses = race_refresh(app, user.refresh_token, 2)

    assert [r.status_code for r in responses] == [200, 200], [r.get_data(as_text=True) for r in responses]
    pairs = [json_of(r)["data"] for r in responses]
    with app.app_context():
        spent = claims_of(user.refresh_token)["jti"]
        claims = [claims_of(pair["refresh_token"]) for pair in pairs]
    assert len({(c["jti"], c["exp"]) for c in claims}) == 1
    current = claims[0]["jti"]
    assert current != spent
    assert session_row(app, user.session_id) == (current, spent, None)

    client = app.test_client()
    for pair in pairs:
        assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200

    # Each thread refreshes again with its own copy, at once: one rotation again, one grace.
    responses = at_once(app, lambda client, i: client.post(REFRESH, headers=bearer(pairs[i]["refresh_token"])), 2)
    assert [r.status_code for r in responses] == [200, 200], [r.get_data(as_text=True) for r in responses]
    with app.app_context():
        newer = {claims_of(json_of(r)["data"]["refresh_token"])["jti"] for r in responses}
    assert len(newer) == 1 and newer != {current}
    assert session_row(app, user.session_id) == (*newer, current, None)

    # The first token, two rotations old, is a replay: now the whole family dies.
    replay = client.post(REFRESH, headers=bearer(user.refresh_token))
    assert replay.status_code == 401 and json_of(replay)["error"]["code"] == "TOKEN_REVOKED"
    for response in (client.get(ME, headers=bearer(json_of(r)["data"]["access_token"])) for r in responses):
        assert response.status_code == 401 and json_of(response)["error"]["code"] == "TOKEN_REVOKED"
    assert session_row(app, user.session_id)[2] is not None


def test_the_refresh_that_waits_for_the_rotation_gets_its_token(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving the race above may or may not meet: the winner still holds its
    row when the other's UPDATE comes, which waits for its commit, matches nothing, and
    must then see that rotation (the grace), not the session as it was (a replay)."""
    real_issue_pair = service.issue_pair

    def slow_issue_pair(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # after the rotation's UPDATE, before its commit
        return real_issue_pair(*args, **kwargs)

    monkeypatch.setattr(service, "issue_pair", slow_issue_pair)
    user = create_user(app)
    responses = race_refresh(app, user.refresh_token, 2)

    assert [r.status_code for r in responses] == [200, 200], [r.get_data(as_text=True) for r in responses]
    with app.app_context():
        assert len({claims_of(json_of(r)["data"]["refresh_token"])["jti"] for r in responses}) == 1
    assert session_row(app, user.session_id)[2] is None


def session_row(app: Flask, session_id: str) -> tuple[Any, ...]:
    """The session's current and previous jti, and when it was revoked."""
    with app.app_context():
        row = db.session.execute(
            sa.select(AuthSession.current_jti, AuthSession.previous_jti, AuthSession.revoked_at).where(
                AuthSession.id == uuid.UUID(session_id)
            )
        ).one()
    return tuple(row)
