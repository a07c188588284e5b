"""Registration, email verification, and no enumeration through registration."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from app.auth.models import AccountToken, TokenPurpose
from app.db import db, utcnow
from app.mail.models import OutboxMail
from app.users.models import User
from tests.conftest import json_of
from tests.factories import create_user
from tests.support.mailbox import Mailbox

REGISTER = "/api/v1/auth/register"
PASSWORD = "Sturdy-Passphrase-7"


def register(client: FlaskClient, email: str = "ann@example.com", password: str = PASSWORD, **extra: str):
    return client.post(REGISTER, json={"email": email, "password": password, "full_name": "Ann Lee", **extra})


def login(client: FlaskClient, email: str, password: str = PASSWORD):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_register_mails_a_working_verification_token(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    response = register(client, email="Ann@Example.COM")
    assert response.status_code == 201
    user = json_of(response)["data"]
    assert user["email"] == "ann@example.com"
    assert user["role"] == "customer"
    assert user["email_verified_at"] is None
    assert "password" not in response.get_data(as_text=True)
    assert response.headers["Location"] == "/api/v1/users/me"

    run_jobs()
    [mail] = mailbox.to("ann@example.com")
    assert "verify" in mail["Subject"].lower()
    # RFC 5322's Date, and a Message-ID that every attempt at this outbox row shares.
    assert parsedate_to_datetime(mail["Date"]).tzinfo is not None
    with app.app_context():
        outbox_id = db.session.scalars(sa.select(OutboxMail.id).where(OutboxMail.to_address == "ann@example.com")).one()
    assert mail["Message-ID"] == f"<{outbox_id}.storefront@{app.config['MAIL_FROM'].rpartition('@')[2].rstrip('>')}>"
    token = mailbox.token_for("ann@example.com")

    # An unverified account can log in; /users/me shows the state.
    tokens = json_of(login(client, "ann@example.com"))["data"]
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert json_of(client.get("/api/v1/users/me", headers=headers))["data"]["email_verified_at"] is None

    assert client.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert json_of(client.get("/api/v1/users/me", headers=headers))["data"]["email_verified_at"].endswith("Z")
    # Single use.
    again = client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 422
    assert json_of(again)["error"]["details"][0]["field"] == "token"


def test_verify_with_unknown_token_is_422(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/verify-email", json={"token": "x" * 43})
    assert response.status_code == 422


def test_registering_an_existing_email_looks_the_same_and_mails_the_owner(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    owner = create_user(app, email="taken@example.com")
    fresh = register(client, email="new@example.com")
    dup = register(client, email="Taken@example.com")
    assert dup.status_code == fresh.status_code == 201
    fresh_body, dup_body = json_of(fresh)["data"], json_of(dup)["data"]
    assert set(fresh_body) == set(dup_body)
    assert dup_body["id"] != owner.id
    assert dup_body["email_verified_at"] is None
    assert dup.headers["Location"] == fresh.headers["Location"]
    run_jobs()
    [notice] = mailbox.to("taken@example.com")
    assert "already has an account" in mailbox.text_of(notice)
    # The owner's password did not change.
    assert login(client, "taken@example.com", owner.password).status_code == 200


def test_an_unverified_address_registered_again_gets_a_link_that_takes_the_account_over(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    """The verify page says how to go on when its link expired: register again. The owner's
    mail then carries a link to choose the password: spending it verifies the address and
    ends the sessions of whoever registered it first (a stranger, perhaps, who knows the
    old password and keeps nothing)."""
    assert register(client, email="late@example.com").status_code == 201  # a stranger's password
    stranger = json_of(login(client, "late@example.com"))["data"]
    run_jobs()
    first = mailbox.token_for("late@example.com")
    with app.app_context():
        db.session.execute(sa.update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.post("/api/v1/auth/verify-email", json={"token": first}).status_code == 422
    mailbox.clear()

    assert register(client, email="late@example.com", password="Another-Passphrase-8").status_code == 201
    run_jobs()
    [notice] = mailbox.to("late@example.com")
    assert "already has an account" in mailbox.text_of(notice)
    assert "/account/reset-password?token=" in mailbox.text_of(notice)
    token = mailbox.token_for("late@example.com")
    reset = client.post("/api/v1/auth/password/reset", json={"token": token, "password": "Owners-Passphrase-9"})
    assert reset.status_code == 204
    response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {stranger['access_token']}"})
    assert response.status_code == 401  # the stranger's session ended
    assert login(client, "late@example.com").status_code == 401  # and the old password
    tokens = json_of(login(client, "late@example.com", "Owners-Passphrase-9"))["data"]
    me = json_of(client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}))
    assert me["data"]["email_verified_at"].endswith("Z")

    # Verified now: registering again mails no link.
    mailbox.clear()
    assert register(client, email="late@example.com").status_code == 201
    run_jobs()
    [notice] = mailbox.to("late@example.com")
    assert "token=" not in mailbox.text_of(notice)


def test_register_validation(client: FlaskClient) -> None:
    cases = {
        "email": {"email": "not-an-email", "password": PASSWORD, "full_name": "A"},
        "password": {"email": "a@example.com", "password": "short", "full_name": "A"},
        "full_name": {"email": "a@example.com", "password": PASSWORD, "full_name": ""},
        "role": {"email": "a@example.com", "password": PASSWORD, "full_name": "A", "role": "admin"},
    }
    for field, body in cases.items():
        response = client.post(REGISTER, json=body)
        assert response.status_code == 422, field
        assert field in {d["field"] for d in json_of(response)["error"]["details"]}, field


def test_password_policy(client: FlaskClient) -> None:
    for bad in ("alllowercaseletters", "123456789012345", "ann@example.com", "Short1!"):
        response = register(client, email="ann@example.com", password=bad)
        assert response.status_code == 422, bad
        assert json_of(response)["error"]["details"][0]["field"] == "password"


def test_register_is_rate_limited_with_headers(client: FlaskClient) -> None:
    statuses = []
    for i in range(25):
        response = register(client, email=f"user{i}@example.com", password="weak")
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
        # Rate-limit headers on every answer; Retry-After only on the refusal (API.md).
        assert response.headers["X-RateLimit-Remaining"].isdigit()
        assert "Retry-After" not in response.headers
    assert statuses[-1] == 429
    assert response.headers["Retry-After"].isdigit()
    assert json_of(response)["error"]["code"] == "RATE_LIMITED"
    ok = client.post("/api/v1/auth/verify-email", json={"token": "y" * 43})
    assert "X-RateLimit-Limit" in ok.headers and "X-RateLimit-Remaining" in ok.headers


def test_registering_an_existing_email_does_the_same_hashing_work(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_user(app, email="taken@example.com")
    hashed: list[str] = []
    real_hash = PasswordHasher.hash

    def spy(self: PasswordHasher, password: str | bytes, **kwargs: bytes | None) -> str:
        hashed.append("hash")
        return real_hash(self, password, **kwargs)

    monkeypatch.setattr(PasswordHasher, "hash", spy)

    assert register(client, email="new@example.com").status_code == 201
    assert len(hashed) == 1
    assert register(client, email="taken@example.com").status_code == 201
    assert len(hashed) == 2


def _verify_token_row(app: Flask, email: str) -> tuple[uuid.UUID, timedelta]:
    """The id of the user's verification token and how long it was issued for."""
    with app.app_context():
        row = db.session.scalars(
            sa.select(AccountToken)
            .join(User, User.id == AccountToken.user_id)
            .where(User.email == email, AccountToken.purpose == TokenPurpose.VERIFY_EMAIL)
        ).one()
        return row.id, row.expires_at - row.created_at


def _set_expiry(app: Flask, token_id: uuid.UUID, delta: timedelta) -> None:
    with app.app_context():
        db.session.execute(
            sa.update(AccountToken).where(AccountToken.id == token_id).values(expires_at=utcnow() + delta)
        )
        db.session.commit()


def test_verification_token_expires_after_24_hours(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    assert register(client).status_code == 201
    run_jobs()
    token = mailbox.token_for("ann@example.com")
    token_id, lifetime = _verify_token_row(app, "ann@example.com")
    assert app.config["VERIFY_TOKEN_SECONDS"] == 24 * 3600
    assert abs(lifetime - timedelta(hours=24)) < timedelta(minutes=1)

    tokens = json_of(login(client, "ann@example.com"))["data"]
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}

    _set_expiry(app, token_id, -timedelta(seconds=1))
    expired = client.post("/api/v1/auth/verify-email", json={"token": token})
    assert expired.status_code == 422
    assert json_of(expired)["error"]["code"] == "VALIDATION_ERROR"
    assert json_of(expired)["error"]["details"][0]["field"] == "token"
    assert json_of(client.get("/api/v1/users/me", headers=headers))["data"]["email_verified_at"] is None

    # The same token still within its life works: the refusal was the expiry alone.
    _set_expiry(app, token_id, timedelta(minutes=1))
    assert client.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert json_of(client.get("/api/v1/users/me", headers=headers))["data"]["email_verified_at"] is not None


def test_account_mails_say_how_long_their_links_work_as_configured(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "VERIFY_TOKEN_SECONDS", 7200)
    monkeypatch.setitem(app.config, "RESET_TOKEN_SECONDS", 5400)
    assert register(client, email="clock@example.com").status_code == 201
    run_jobs()
    assert "within 2 hours" in mailbox.text_of(mailbox.to("clock@example.com")[-1])
    assert client.post("/api/v1/auth/password/forgot", json={"email": "clock@example.com"}).status_code in (202, 204)
    run_jobs()
    assert "within 90 minutes" in mailbox.text_of(mailbox.to("clock@example.com")[-1])


def test_only_a_verified_address_places_orders_and_a_new_link_is_one_request_away(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order holds stock: an account nobody can reach by mail (made by the dozen and
    thrown away) holds none. The caller asks for a new link; once verified it orders."""
    from tests.orders.conftest import ADDRESS, make_product, stock_of

    product = make_product(app, stock=5)
    user = create_user(app, verified=False)
    order = {"items": [{"product_id": product, "quantity": 5}], "shipping_address": ADDRESS}
    refused = client.post("/api/v1/orders", json=order, headers=user.headers)
    assert refused.status_code == 403, refused.get_data(as_text=True)
    assert json_of(refused)["error"]["code"] == "FORBIDDEN"
    assert "/auth/verify-email/resend" in json_of(refused)["error"]["message"]
    assert stock_of(app, product) == 5

    resent = client.post("/api/v1/auth/verify-email/resend", headers=user.headers)
    assert resent.status_code == 202, resent.get_data(as_text=True)
    run_jobs()
    [mail] = mailbox.to(user.email)
    assert "confirm your email" in mail["Subject"].lower()
    assert client.post("/api/v1/auth/verify-email", json={"token": mailbox.token_for(user.email)}).status_code == 204

    assert client.post("/api/v1/orders", json=order, headers=user.headers).status_code == 201
    assert stock_of(app, product) == 0
    again = client.post("/api/v1/auth/verify-email/resend", headers=user.headers)
    assert again.status_code == 409 and json_of(again)["error"]["code"] == "CONFLICT"
    assert client.post("/api/v1/auth/verify-email/resend").status_code == 401

    # A store that takes orders from unverified accounts says so.
    monkeypatch.setitem(app.config, "ORDER_REQUIRES_VERIFIED_EMAIL", False)
    other = create_user(app, verified=False)
    restocked = make_product(app, stock=1)
    body = {"items": [{"product_id": restocked, "quantity": 1}], "shipping_address": ADDRESS}
    assert client.post("/api/v1/orders", json=body, headers=other.headers).status_code == 201
