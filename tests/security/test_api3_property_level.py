"""API3:2023 Broken Object Property Level Authorization.

Clients set only the properties they may set, see only those they may see, and are told
about every property that was refused, whether a field rule or a policy refused it.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import create_user

REGISTER = "/api/v1/auth/register"
ME = "/api/v1/users/me"


def fields_of(response) -> set[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.get_data(as_text=True)
    return {d["field"] for d in json_of(response)["error"]["details"]}


def test_details_name_every_failing_field_schema_or_policy(client: FlaskClient) -> None:
    bad_email_short_password = {"email": "not-an-email", "password": "short", "full_name": "Ann"}
    assert fields_of(client.post(REGISTER, json=bad_email_short_password)) == {"email", "password"}
    bad_email_weak_password = {"email": "not-an-email", "password": "Password1234", "full_name": "Ann\nLee"}
    assert fields_of(client.post(REGISTER, json=bad_email_weak_password)) == {"email", "password", "full_name"}
    missing = client.post(REGISTER, json={"password": "Password1234"})
    assert fields_of(missing) == {"email", "full_name", "password"}


def test_a_wrong_current_password_and_a_weak_new_one_are_both_named(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    response = client.patch(ME, json={"password": "Password1234", "current_password": "nope"}, headers=user.headers)
    assert fields_of(response) == {"current_password", "password"}


def test_privileged_properties_cannot_be_assigned(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    body = {"email": "eve@example.com", "password": "Sturdy-Passphrase-7", "full_name": "Eve", "role": "admin"}
    assert fields_of(client.post(REGISTER, json=body)) == {"role"}
    for field, value in (("role", "admin"), ("is_active", True), ("email_verified_at", "2020-01-01T00:00:00Z")):
        assert fields_of(client.patch(ME, json={field: value}, headers=user.headers)) == {field}
    assert json_of(client.get(ME, headers=user.headers))["data"]["role"] == "customer"


def test_no_secret_property_is_ever_shown(app: Flask, client: FlaskClient) -> None:
    admin = create_user(app, role="admin")
    for path in (ME, "/api/v1/users", "/api/v1/auth/sessions"):
        text = client.get(path, headers=admin.headers).get_data(as_text=True)
        for secret in ("password", "hash", "jti", "failed_login_count", "locked_until"):
            assert secret not in text, (path, secret)
