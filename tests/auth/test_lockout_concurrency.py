"""The lockout under real concurrency (PostgreSQL, real threads): wrong passwords sent
together are checked no more often than the limit allows, one after another."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.db import db
from app.users.models import User
from tests.conftest import json_of
from tests.factories import DEFAULT_PASSWORD, bearer, create_user
from tests.support.threads import at_once

pytestmark = pytest.mark.services

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"


def _account(app: Flask, email: str) -> tuple[int, Any]:
    with app.app_context():
        row = db.session.execute(sa.select(User.failed_login_count, User.locked_until).where(User.email == email)).one()
        return row.failed_login_count, row.locked_until


def test_wrong_passwords_sent_together_are_checked_no_more_than_the_limit(app: Flask) -> None:
    limit = int(app.config["LOGIN_MAX_FAILURES"])
    user = create_user(app)
    guesses = limit + 4
    responses = at_once(
        app,
        lambda client, i: client.post(LOGIN, json={"email": user.email, "password": f"Wrong-guess-{i}-xx"}),
        guesses,
    )
    statuses = sorted(r.status_code for r in responses)
    # Checked: the 401s and the one 423 that locked; the rest were refused unchecked.
    assert statuses == [401] * (limit - 1) + [423] * (guesses - limit + 1), statuses
    assert _account(app, user.email)[0] == limit and _account(app, user.email)[1] is not None
    right = app.test_client().post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD})
    assert right.status_code == 423 and json_of(right)["error"]["code"] == "ACCOUNT_LOCKED"


def test_the_right_password_among_wrong_ones_sent_together_never_passes_a_lock(app: Flask) -> None:
    """Whatever order they are checked in, the answers are those of some order one at a
    time: the right password either came before the lock (200, and the count starts
    again) or after it (423); the account's row agrees with the answers."""
    limit = int(app.config["LOGIN_MAX_FAILURES"])
    user = create_user(app)
    guesses = limit + 3

    def send(client: Any, i: int) -> Any:
        password = DEFAULT_PASSWORD if i == guesses - 1 else f"Wrong-guess-{i}-xx"
        return client.post(LOGIN, json={"email": user.email, "password": password})

    responses = at_once(app, send, guesses)
    right, wrong = responses[-1].status_code, [r.status_code for r in responses[:-1]]
    assert right in (200, 423)
    assert wrong.count(401) + wrong.count(423) == len(wrong)
    count, locked_until = _account(app, user.email)
    if locked_until is not None:
        assert count == limit
    else:
        assert right == 200 and count < limit
    if right == 200:
        token = json_of(responses[-1])["data"]["access_token"]
        assert app.test_client().get(ME, headers=bearer(token)).status_code == 200


def test_wrong_current_passwords_sent_together_are_checked_no_more_than_the_limit(app: Flask) -> None:
    limit = int(app.config["LOGIN_MAX_FAILURES"])
    user = create_user(app)
    guesses = limit + 3

    def send(client: Any, i: int) -> Any:
        body = {"current_password": f"Wrong-guess-{i}-xx", "password": "Another-Harbor-Lantern-7714"}
        return client.patch(ME, json=body, headers=bearer(user.access_token))

    statuses = sorted(r.status_code for r in at_once(app, send, guesses))
    assert statuses == [422] * (limit - 1) + [423] * (guesses - limit + 1), statuses
    assert _account(app, user.email)[0] == limit


def test_the_right_password_sent_many_times_at_once_is_never_locked_out(app: Flask) -> None:
    """A client retrying, or several devices signing in at once: only wrong passwords count
    toward the lock. Checks beyond the window's room wait for those under way, which
    were right, rather than being refused as if they had failed."""
    limit = int(app.config["LOGIN_MAX_FAILURES"])
    user = create_user(app)
    responses = at_once(
        app, lambda client, i: client.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD}), limit + 4
    )
    assert [r.status_code for r in responses] == [200] * (limit + 4), [r.get_data(as_text=True) for r in responses]
    assert _account(app, user.email) == (0, None)
