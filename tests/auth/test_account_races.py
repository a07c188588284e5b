"""An account's credentials and standing against sign-ins and each other, at the same moment
(PostgreSQL, real threads): a change ends every session opened before it commits, a sign-in
in flight included, and two changes wait for each other rather than deadlock."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth import recovery
from app.auth import service as auth_service
from app.auth.models import TokenPurpose
from app.db import db
from app.users import lockout
from app.users.models import User
from tests.conftest import json_of
from tests.factories import AuthedUser, bearer, create_user
from tests.support.threads import at_once

pytestmark = pytest.mark.services

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"
NEW_PASSWORD = "Another-Sturdy-Phrase-42"
RESET_PASSWORD = "Reset-Chosen-Phrase-77"


def in_background(call: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``call`` in a thread now; the returned function waits for its result."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()))
    thread.start()

    def result() -> Any:
        thread.join(timeout=30)
        assert box, "the background request did not finish"
        return box[0]

    return result


@pytest.fixture
def slow_session_opening(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sign-in lingers after its password check, before its session is written: a change
    to the account lands in between."""
    open_session = auth_service.open_session

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return open_session(*args, **kwargs)

    monkeypatch.setattr(auth_service, "open_session", slow)


def login(app: Flask, user: AuthedUser, password: str | None = None) -> Any:
    body = {"email": user.email, "password": password or user.password}
    return app.test_client().post(LOGIN, json=body)


def refreshes(app: Flask, tokens: dict[str, Any]) -> int:
    return app.test_client().post(REFRESH, headers=bearer(tokens["refresh_token"])).status_code


@pytest.mark.usefixtures("slow_session_opening")
def test_a_sign_in_in_flight_during_a_password_change_does_not_outlive_it(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    signing_in = in_background(lambda: login(app, user))
    time.sleep(0.15)  # the sign-in has checked the password, and is opening its session
    change = {"current_password": user.password, "password": NEW_PASSWORD}
    changed = client.patch(ME, json=change, headers=user.headers)
    assert changed.status_code == 200, changed.get_data(as_text=True)
    signed_in = signing_in()
    if signed_in.status_code == 200:  # it opened its session first: the change ended it
        assert refreshes(app, json_of(signed_in)["data"]) == 401
    else:
        assert signed_in.status_code == 401
    assert login(app, user).status_code == 401
    assert client.post(LOGIN, json={"email": user.email, "password": NEW_PASSWORD}).status_code == 200


@pytest.mark.usefixtures("slow_session_opening")
def test_a_sign_in_in_flight_during_a_deactivation_does_not_come_back_with_the_account(
    app: Flask, client: FlaskClient
) -> None:
    user, admin = create_user(app), create_user(app, role="admin")
    signing_in = in_background(lambda: login(app, user))
    time.sleep(0.15)
    path = f"/api/v1/users/{user.id}"
    assert client.patch(path, json={"is_active": False}, headers=admin.headers).status_code == 200
    signed_in = signing_in()
    assert client.patch(path, json={"is_active": True}, headers=admin.headers).status_code == 200
    if signed_in.status_code == 200:
        tokens = json_of(signed_in)["data"]
        assert refreshes(app, tokens) == 401
        assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 401
    else:
        assert signed_in.status_code == 401


def reset_token(app: Flask, user: AuthedUser) -> str:
    with app.app_context():
        account = db.session.get(User, uuid.UUID(user.id))
        assert account is not None
        token = recovery._issue_token(account, TokenPurpose.PASSWORD_RESET, 600)
        db.session.commit()
        return token


@pytest.fixture
def slow_password_check(monkeypatch: pytest.MonkeyPatch) -> None:
    check = lockout.check_password

    def slow(*args: Any, **kwargs: Any) -> bool:
        ok = check(*args, **kwargs)
        time.sleep(0.5)
        return ok

    monkeypatch.setattr(lockout, "check_password", slow)


@pytest.mark.usefixtures("slow_password_check")
def test_a_reset_and_a_change_at_once_never_both_succeed(app: Flask, client: FlaskClient) -> None:
    """One waits for the other: if the change commits first, the reset link it retired is
    refused; if the reset does, the change finds the password it checked gone. Either
    way the password that works is the winner's (both used to answer success, and the
    change silently replaced the password the reset had just set)."""
    user = create_user(app)
    token = reset_token(app, user)
    change = {"current_password": user.password, "password": NEW_PASSWORD}
    changing = in_background(lambda: app.test_client().patch(ME, json=change, headers=user.headers))
    time.sleep(0.15)  # the change has checked the old password, and is about to write
    reset = client.post("/api/v1/auth/password/reset", json={"token": token, "password": RESET_PASSWORD})
    changed = changing()
    outcome = (reset.status_code, changed.status_code)
    assert outcome in {(204, 422), (204, 401), (422, 200)}, (outcome, reset.get_data(as_text=True))
    winner = RESET_PASSWORD if reset.status_code == 204 else NEW_PASSWORD
    works = {p for p in (RESET_PASSWORD, NEW_PASSWORD, user.password) if login(app, user, p).status_code == 200}
    assert works == {winner}


def test_resets_racing_changes_and_deactivations_neither_deadlock_nor_fail(app: Flask) -> None:
    admin = create_user(app, role="admin")
    statuses: list[int] = []
    for round_ in range(6):
        user = create_user(app)
        token = reset_token(app, user)
        change = {"current_password": user.password, "password": NEW_PASSWORD}
        reset = {"token": token, "password": RESET_PASSWORD}

        def send(
            client: FlaskClient,
            i: int,
            user: AuthedUser = user,
            change: Any = change,
            reset: Any = reset,
            n: int = round_,
        ) -> Any:
            if i == 0:
                return client.post("/api/v1/auth/password/reset", json=reset)
            if n % 2:
                return client.patch(f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers)
            return client.patch(ME, json=change, headers=user.headers)

        answers = at_once(app, send, 2)
        statuses += [a.status_code for a in answers]
        assert all(a.status_code < 500 for a in answers), [a.get_data(as_text=True) for a in answers]
    assert 409 not in statuses and 503 not in statuses, statuses
