"""Refresh rotation under real concurrency (PostgreSQL, real threads): one token, one winner."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.auth.models import AuthSession
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


def test_two_concurrent_refreshes_with_one_token_revoke_the_family(app: Flask) -> None:
    user = create_user(app)
    responses = race_refresh(app, user.refresh_token, 2)

    assert sorted(r.status_code for r in responses) == [200, 401], [r.get_data(as_text=True) for r in responses]
    [winner] = [json_of(r)["data"] for r in responses if r.status_code == 200]
    [loser] = [json_of(r)["error"] for r in responses if r.status_code == 401]
    assert loser["code"] == "TOKEN_REVOKED"

    # The second presentation was a reuse of a spent token: the whole family is dead,
    # including the pair the winner just received.
    client = app.test_client()
    for response in (
        client.get(ME, headers=bearer(winner["access_token"])),
        client.post(REFRESH, headers=bearer(winner["refresh_token"])),
        client.post(REFRESH, headers=bearer(user.refresh_token)),
    ):
        assert response.status_code == 401
        assert json_of(response)["error"]["code"] == "TOKEN_REVOKED"
    with app.app_context():
        revoked_at = db.session.scalar(
            sa.select(AuthSession.revoked_at).where(AuthSession.id == uuid.UUID(user.session_id))
        )
    assert revoked_at is not None
