"""One password, however a keyboard spells its accents: passwords are hashed, checked and
judged in Unicode NFKC; an account hashed before that still signs in, and is upgraded."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from app.db import db
from app.users.models import User
from tests.conftest import json_of
from tests.factories import create_user
from tests.security.support import admin_sign_in
from tests.support.mailbox import Mailbox

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"
NFC = unicodedata.normalize("NFC", "Café-Résumé-Lantern-77")
NFD = unicodedata.normalize("NFD", NFC)


def login(client: FlaskClient, email: str, password: str) -> int:
    return client.post(LOGIN, json={"email": email, "password": password}).status_code


def stored_hash(app: Flask, email: str) -> str:
    with app.app_context():
        return str(db.session.scalar(sa.select(User.password_hash).where(User.email == email)))


def test_registered_in_one_form_signs_in_with_the_other(client: FlaskClient) -> None:
    assert NFC != NFD
    for email, registered, typed in (("nfc@example.com", NFC, NFD), ("nfd@example.com", NFD, NFC)):
        body = {"email": email, "password": registered, "full_name": "Zoë Roe"}
        assert client.post("/api/v1/auth/register", json=body).status_code == 201
        assert login(client, email, typed) == 200, (email, "typed the other way")
        assert login(client, email, registered) == 200


def test_current_password_reset_and_dashboard_sign_in_take_either_form(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    user = create_user(app, password=NFC)
    changed = client.patch(ME, json={"current_password": NFD, "password": "Brand-New-Secret-88"}, headers=user.headers)
    assert changed.status_code == 200, changed.get_json()

    assert client.post("/api/v1/auth/password/forgot", json={"email": user.email}).status_code == 202
    run_jobs()
    reset = {"token": mailbox.token_for(user.email), "password": NFD}
    assert client.post("/api/v1/auth/password/reset", json=reset).status_code == 204
    assert login(client, user.email, NFC) == 200

    admin = create_user(app, role="admin", password=NFD)
    assert admin_sign_in(client, admin.email, NFC).status_code == 303


def test_an_account_hashed_before_normalisation_signs_in_and_is_upgraded(app: Flask, client: FlaskClient) -> None:
    """Its hash is of the NFD text as sent: that still signs in, once, and the hash is
    replaced by one of the NFKC form, which every spelling then matches."""
    user = create_user(app, password="Placeholder-Password-1")
    with app.app_context():
        config = app.config
        hasher = PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
        )
        legacy = hasher.hash(NFD)
        db.session.execute(sa.update(User).where(User.id == uuid.UUID(user.id)).values(password_hash=legacy))
        db.session.commit()

    assert login(client, user.email, NFC) == 401  # normalised, it is not what was hashed
    answer = client.post(LOGIN, json={"email": user.email, "password": NFD})
    assert answer.status_code == 200, answer.get_json()
    assert json_of(answer)["data"]["access_token"]

    upgraded = stored_hash(app, user.email)
    assert upgraded != legacy
    assert hasher.verify(upgraded, unicodedata.normalize("NFKC", NFD))
    assert login(client, user.email, NFC) == 200
    assert login(client, user.email, NFD) == 200
    assert stored_hash(app, user.email) == upgraded  # upgraded once
