"""/users: own profile, admin management, and two users who must not see each other."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.auth.models import AccountToken, AuthSession
from app.auth.tasks import forget_what_served_its_purpose
from app.db import db, utcnow
from app.mail.models import OutboxMail
from app.users.models import User
from tests.conftest import json_of
from tests.factories import AuthedUser, bearer, create_user
from tests.support.mailbox import Mailbox

ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"


def second_login(client: FlaskClient, user: AuthedUser) -> dict[str, str]:
    """Open another session for ``user`` (a second device); returns its token pair."""
    response = client.post(
        LOGIN, json={"email": user.email, "password": user.password}, headers={"User-Agent": "phone"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    pair: dict[str, str] = json_of(response)["data"]
    return pair


def revoked_at_of_sessions(app: Flask, user_id: str) -> list[datetime | None]:
    with app.app_context():
        return list(
            db.session.scalars(sa.select(AuthSession.revoked_at).where(AuthSession.user_id == uuid.UUID(user_id)))
        )


def test_me_shows_the_profile_without_secrets(app: Flask, client: FlaskClient) -> None:
    user = create_user(app, full_name="Dana Roe")
    response = client.get(ME, headers=user.headers)
    body = json_of(response)["data"]
    assert body["email"] == user.email and body["full_name"] == "Dana Roe"
    assert set(body) == {
        "id",
        "email",
        "full_name",
        "role",
        "is_active",
        "email_verified_at",
        "created_at",
        "updated_at",
    }
    assert "hash" not in response.get_data(as_text=True)


def test_me_rejects_privileged_fields_and_changes_nothing(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    for field, value in (("role", "admin"), ("is_active", False), ("id", "x"), ("email_verified_at", None)):
        response = client.patch(ME, json={field: value, "full_name": "Changed"}, headers=user.headers)
        assert response.status_code == 422, field
        assert [d["field"] for d in json_of(response)["error"]["details"]] == [field]
    body = json_of(client.get(ME, headers=user.headers))["data"]
    assert body["role"] == "customer" and body["full_name"] != "Changed"


def test_change_password_needs_the_current_one_and_ends_other_sessions(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    other = json_of(client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password}))["data"]
    missing = client.patch(ME, json={"password": "Another-Secret-99"}, headers=user.headers)
    assert json_of(missing)["error"]["details"][0]["field"] == "current_password"
    wrong = client.patch(ME, json={"password": "Another-Secret-99", "current_password": "nope"}, headers=user.headers)
    assert wrong.status_code == 422
    ok = client.patch(
        ME, json={"password": "Another-Secret-99", "current_password": user.password}, headers=user.headers
    )
    assert ok.status_code == 200
    assert client.get(ME, headers=user.headers).status_code == 200  # this session stays
    assert client.get(ME, headers={"Authorization": f"Bearer {other['access_token']}"}).status_code == 401
    login = client.post("/api/v1/auth/login", json={"email": user.email, "password": "Another-Secret-99"})
    assert login.status_code == 200


def test_two_customers_cannot_read_or_change_each_other(app: Flask, client: FlaskClient) -> None:
    alice, bob = create_user(app), create_user(app)
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(f"/api/v1/users/{bob.id}", json={}, headers=alice.headers)
        assert response.status_code == 403, method
    assert client.get("/api/v1/users", headers=alice.headers).status_code == 403
    assert json_of(client.get(ME, headers=bob.headers))["data"]["id"] == bob.id


def test_staff_cannot_manage_users(app: Flask, client: FlaskClient) -> None:
    staff, customer = create_user(app, role="staff"), create_user(app)
    response = client.patch(f"/api/v1/users/{customer.id}", json={"role": "admin"}, headers=staff.headers)
    assert response.status_code == 403
    assert json_of(response)["error"]["code"] == "FORBIDDEN"
    assert client.patch(f"/api/v1/users/{staff.id}", json={"role": "admin"}, headers=staff.headers).status_code == 403


def test_anonymous_gets_401(client: FlaskClient) -> None:
    for path in (ME, "/api/v1/users"):
        response = client.get(path)
        assert response.status_code == 401
        assert json_of(response)["error"]["code"] == "UNAUTHORIZED"


def test_admin_manages_roles_and_activation(app: Flask, client: FlaskClient) -> None:
    admin, user = create_user(app, role="admin"), create_user(app)
    response = client.patch(f"/api/v1/users/{user.id}", json={"role": "staff"}, headers=admin.headers)
    assert json_of(response)["data"]["role"] == "staff"
    # The new role applies at once, even to tokens issued before the change.
    assert client.get("/api/v1/users", headers=user.headers).status_code == 403
    assert client.patch(f"/api/v1/users/{user.id}", json={"role": "king"}, headers=admin.headers).status_code == 422
    assert client.get(f"/api/v1/users/{admin.id}", headers=admin.headers).status_code == 200
    # An admin cannot lock themselves out.
    assert client.patch(f"/api/v1/users/{admin.id}", json={"role": "staff"}, headers=admin.headers).status_code == 409
    assert client.delete(f"/api/v1/users/{admin.id}", headers=admin.headers).status_code == 409


def test_soft_delete_hides_the_user(app: Flask, client: FlaskClient) -> None:
    admin, user = create_user(app, role="admin"), create_user(app)
    assert client.delete(f"/api/v1/users/{user.id}", headers=admin.headers).status_code == 204
    assert client.get(f"/api/v1/users/{user.id}", headers=admin.headers).status_code == 404
    emails = [u["email"] for u in json_of(client.get("/api/v1/users?per_page=100", headers=admin.headers))["data"]]
    assert user.email not in emails


def test_admin_list_filters_sort_and_pages(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin", email="root@example.com")
    for i in range(5):
        create_user(app, email=f"staffer{i}@example.com", role="staff", full_name=f"Staff Person {i}")
    create_user(app, email="zed@example.com", full_name="Zed Quux")
    inactive = create_user(app, email="gone@example.com", is_active=False)

    def emails(query: str) -> list[str]:
        response = client.get(f"/api/v1/users?{query}", headers=admin.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [u["email"] for u in json_of(response)["data"]]

    assert emails("role=staff&sort=email") == [f"staffer{i}@example.com" for i in range(5)]
    assert emails("q=QUUX") == ["zed@example.com"]
    assert emails("is_active=false") == [inactive.email]
    assert emails("sort=-email&per_page=2") == ["zed@example.com", "staffer4@example.com"]
    page = json_of(client.get("/api/v1/users?per_page=3&page=2", headers=admin.headers))
    assert page["meta"] == {"page": 2, "per_page": 3, "total": 8, "total_pages": 3}
    assert client.get("/api/v1/users?sort=password_hash", headers=admin.headers).status_code == 422
    assert client.get("/api/v1/users?q=%25", headers=admin.headers).status_code == 200
    assert admin.email in emails("q=root")


def test_protected_operations_are_documented(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    me = spec["paths"]["/api/v1/users/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert "401" in me["responses"]
    admin_list = spec["paths"]["/api/v1/users"]["get"]
    assert {"401", "403"} <= set(admin_list["responses"])
    assert "security" not in spec["paths"]["/api/v1/auth/login"]["post"]
    assert spec["paths"]["/api/v1/auth/refresh"]["post"]["security"] == [{"bearerAuth": []}]


def test_soft_delete_revokes_every_session_of_the_user(app: Flask, client: FlaskClient) -> None:
    admin, user = create_user(app, role="admin"), create_user(app)
    phone = second_login(client, user)
    assert revoked_at_of_sessions(app, user.id) == [None, None]

    assert client.delete(f"/api/v1/users/{user.id}", headers=admin.headers).status_code == 204

    # Not merely refused because the account is gone: every session row is revoked.
    revoked = revoked_at_of_sessions(app, user.id)
    assert len(revoked) == 2 and all(at is not None for at in revoked), revoked
    for token in (user.access_token, phone["access_token"]):
        assert client.get(ME, headers=bearer(token)).status_code == 401
    assert client.post(REFRESH, headers=bearer(phone["refresh_token"])).status_code == 401
    # The admin's own session is untouched.
    assert revoked_at_of_sessions(app, admin.id) == [None]
    assert client.get(ME, headers=admin.headers).status_code == 200


def test_deactivation_revokes_every_session_and_reactivation_does_not_revive_them(
    app: Flask, client: FlaskClient
) -> None:
    admin, user = create_user(app, role="admin"), create_user(app)
    phone = second_login(client, user)
    item = f"/api/v1/users/{user.id}"

    assert client.patch(item, json={"is_active": False}, headers=admin.headers).status_code == 200
    revoked = revoked_at_of_sessions(app, user.id)
    assert len(revoked) == 2 and all(at is not None for at in revoked), revoked

    reactivated = client.patch(item, json={"is_active": True}, headers=admin.headers)
    assert json_of(reactivated)["data"]["is_active"] is True
    # The old tokens stay dead: their sessions were revoked, not just suspended.
    for access in (user.access_token, phone["access_token"]):
        response = client.get(ME, headers=bearer(access))
        assert response.status_code == 401
        assert json_of(response)["error"]["code"] == "TOKEN_REVOKED"
    for refresh in (user.refresh_token, phone["refresh_token"]):
        response = client.post(REFRESH, headers=bearer(refresh))
        assert response.status_code == 401
        assert json_of(response)["error"]["code"] == "TOKEN_REVOKED"
    # The account itself works again: a new login gets a working session.
    fresh = second_login(client, user)
    assert client.get(ME, headers=bearer(fresh["access_token"])).status_code == 200
    assert revoked_at_of_sessions(app, admin.id) == [None]


def test_a_demotion_ends_the_accounts_sessions_and_a_later_promotion_does_not_revive_them(
    app: Flask, client: FlaskClient
) -> None:
    """A demoted admin's sessions end (a dashboard cookie is one): promoting the account
    again later does not bring them back. A rename, or a role that takes nothing away,
    ends nothing (a promotion applies to the sessions there are)."""
    admin, other = create_user(app, role="admin"), create_user(app, role="admin")
    item = f"/api/v1/users/{other.id}"
    for change in ({"full_name": "Still Here"}, {"role": "admin"}):
        assert client.patch(item, json=change, headers=admin.headers).status_code == 200
        assert revoked_at_of_sessions(app, other.id) == [None]

    assert client.patch(item, json={"role": "staff"}, headers=admin.headers).status_code == 200
    assert client.patch(item, json={"role": "admin"}, headers=admin.headers).status_code == 200
    response = client.get(ME, headers=other.headers)
    assert response.status_code == 401 and json_of(response)["error"]["code"] == "TOKEN_REVOKED"
    assert client.post(REFRESH, headers=bearer(other.refresh_token)).status_code == 401
    [revoked] = revoked_at_of_sessions(app, other.id)
    assert revoked is not None
    assert revoked_at_of_sessions(app, admin.id) == [None]


def test_a_deleted_accounts_personal_data_goes_and_its_address_can_sign_up_again(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    """The row keeps its id (orders name it), nothing of the person: address, name,
    password, where and on what it signed in, the mails sent to it (their rows stay,
    without body or address), its pending mails and links. The address is free: whoever
    owns it signs up again and gets a new account."""
    admin = create_user(app, role="admin")
    registered = client.post(
        "/api/v1/auth/register",
        json={"email": "leaving@example.com", "password": "Quite-Long-Secret-31", "full_name": "Lea Ving"},
        environ_base={"REMOTE_ADDR": "198.51.100.23"},
        headers={"User-Agent": "Lea's phone"},
    )
    assert registered.status_code == 201
    run_jobs()  # the welcome mail goes
    signed_in = client.post(
        LOGIN,
        json={"email": "leaving@example.com", "password": "Quite-Long-Secret-31"},
        environ_base={"REMOTE_ADDR": "198.51.100.23"},
        headers={"User-Agent": "Lea's phone"},
    )
    assert signed_in.status_code == 200
    user_id = uuid.UUID(
        json_of(client.get(ME, headers=bearer(json_of(signed_in)["data"]["access_token"])))["data"]["id"]
    )
    assert client.post("/api/v1/auth/password/forgot", json={"email": "leaving@example.com"}).status_code == 202
    with app.app_context():  # a mail waiting for its next try (the SMTP server was down)
        db.session.add(
            OutboxMail(to_address="leaving@example.com", template="welcome", subject="Hi", text_body="Dear Lea Ving")
        )
        db.session.commit()

    assert client.delete(f"/api/v1/users/{user_id}", headers=admin.headers).status_code == 204
    run_jobs()
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None and user.deleted_at is not None
        assert (user.email, user.full_name) == (f"deleted-{user_id.hex}@deleted.invalid", "Deleted account")
        assert "leaving" not in user.password_hash
        sessions = db.session.execute(
            sa.select(AuthSession.ip, AuthSession.user_agent).where(AuthSession.user_id == user_id)
        ).all()
        assert sessions and all(row == (None, None) for row in sessions)
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(AccountToken).where(AccountToken.user_id == user_id)
            )
            == 0
        )
        mails = db.session.execute(sa.select(OutboxMail.to_address, OutboxMail.text_body, OutboxMail.sent_at)).all()
        assert not [m for m in mails if "leaving" in m.to_address or "Lea Ving" in m.text_body]
        assert all(m.sent_at is not None for m in mails)
    assert (
        client.post(LOGIN, json={"email": "leaving@example.com", "password": "Quite-Long-Secret-31"}).status_code == 401
    )

    again = client.post(
        "/api/v1/auth/register",
        json={"email": "leaving@example.com", "password": "Another-Long-Secret-42", "full_name": "Lea Again"},
    )
    assert again.status_code == 201
    run_jobs()
    assert "verify" in mailbox.text_of(mailbox.to("leaving@example.com")[-1]).lower()
    back = client.post(LOGIN, json={"email": "leaving@example.com", "password": "Another-Long-Secret-42"})
    assert back.status_code == 200
    assert json_of(client.get(ME, headers=bearer(json_of(back)["data"]["access_token"])))["data"]["id"] != str(user_id)


def test_what_served_its_purpose_goes_after_the_retention(app: Flask, client: FlaskClient) -> None:
    """Sessions that ended (revoked, or past their end) longer ago than RETENTION_SECONDS go
    with their device and address; delivered mails keep their row and lose their body.
    Live sessions, recent ones and mails not yet delivered stay."""
    user = create_user(app)
    phone = second_login(client, user)
    old_session = second_login(client, user)
    assert client.post("/api/v1/auth/logout", headers=bearer(old_session["access_token"])).status_code == 204
    long_ago = utcnow() - timedelta(seconds=app.config["RETENTION_SECONDS"] + 60)
    with app.app_context():
        db.session.execute(
            sa.update(AuthSession).where(AuthSession.revoked_at.is_not(None)).values(revoked_at=long_ago)
        )
        db.session.add_all(
            [
                OutboxMail(
                    to_address=user.email, template="order", subject="Yours", text_body="To 1 Main St", sent_at=long_ago
                ),
                OutboxMail(to_address=user.email, template="welcome", subject="Hi", text_body="Not sent yet"),
            ]
        )
        db.session.commit()
        assert forget_what_served_its_purpose() == {"sessions": 1, "mail_bodies": 1}
        assert forget_what_served_its_purpose() == {"sessions": 0, "mail_bodies": 0}
        bodies = sorted(db.session.scalars(sa.select(OutboxMail.text_body)).all())
    assert bodies[0] == "Not sent yet" and bodies[1].startswith("[removed:")
    assert revoked_at_of_sessions(app, user.id) == [None, None]  # the live ones
    for token in (user.access_token, phone["access_token"]):
        assert client.get(ME, headers=bearer(token)).status_code == 200
    assert client.get(ME, headers=bearer(old_session["access_token"])).status_code == 401
