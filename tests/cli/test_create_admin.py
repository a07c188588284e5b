"""flask create-admin: create or promote, password from a prompt or standard input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db
from app.users.models import User
from tests.conftest import _service_environ, json_of
from tests.factories import create_user

ROOT = Path(__file__).resolve().parents[2]


def test_create_admin_then_log_in(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["create-admin", "Boss@Example.com"], input="Admin-Passphrase-1\n")
    assert result.exit_code == 0, result.output
    assert "Created admin boss@example.com" in result.output
    login = client.post("/api/v1/auth/login", json={"email": "boss@example.com", "password": "Admin-Passphrase-1"})
    tokens = json_of(login)["data"]
    me = json_of(client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}))
    assert me["data"]["role"] == "admin"


def test_create_admin_promotes_an_existing_account_only_when_asked(app: Flask, client: FlaskClient) -> None:
    user = create_user(app, email="promote@example.com")
    refused = app.test_cli_runner().invoke(args=["create-admin", user.email], input="Admin-Passphrase-1\n")
    assert refused.exit_code != 0
    assert "--promote" in refused.output
    assert json_of(client.get("/api/v1/users/me", headers=user.headers))["data"]["role"] == "customer"

    result = app.test_cli_runner().invoke(args=["create-admin", user.email, "--promote"], input="Admin-Passphrase-1\n")
    assert result.exit_code == 0, result.output
    assert "Promoted" in result.output


def test_create_admin_enforces_the_password_policy(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["create-admin", "weak@example.com"], input="short\n")
    assert result.exit_code != 0
    assert "at least 12 characters" in result.output


def test_create_admin_refuses_a_password_no_sign_in_would_accept(app: Flask) -> None:
    """The API refuses text with a NUL before any check: such a password could never be
    typed in to sign in, so the command refuses it too, and creates nothing."""
    result = app.test_cli_runner().invoke(args=["create-admin", "nul@example.com"], input="Zebra-Quartz\x00-Moon-88\n")
    assert result.exit_code != 0 and "Must not contain NUL characters" in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(User).where(User.email == "nul@example.com")) is None


def test_create_admin_reads_a_piped_password_in_a_real_process(app: Flask) -> None:
    env = {**_service_environ(), "FLASK_APP": "wsgi"}
    env["DATABASE_URL"] = env["TEST_DATABASE_URL"]
    env.pop("REDIS_URL", None)
    env["APP_ENV"] = "development"
    if "TEST_REDIS_URL" in env:
        env["REDIS_URL"] = env["TEST_REDIS_URL"]
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "flask"), "create-admin", "piped@example.com"],
        input="Piped-Passphrase-9\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Created admin piped@example.com" in proc.stdout


@pytest.mark.parametrize(
    ("email", "full_name", "problem"),
    [
        ("not-an-email", "Administrator", "email: Not a valid email address"),
        ("a b@example.com", "Administrator", "email: Not a valid email address"),
        ("", "Administrator", "email: Not a valid email address"),
        ("boss@example.com", "Evil\nhttp://evil.example", "full_name: Must be one line"),
        ("boss@example.com", "See https://evil.example", "full_name: Must not contain a web address"),
    ],
)
def test_create_admin_takes_only_what_the_api_would(app: Flask, email: str, full_name: str, problem: str) -> None:
    # An account no one can sign in to (the API refuses its email), or a name that puts a
    # link in every mail's greeting: refused before the password is even asked for.
    result = app.test_cli_runner().invoke(
        args=["create-admin", email, "--full-name", full_name], input="Admin-Passphrase-1\n"
    )
    assert result.exit_code == 1, result.output
    assert problem in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
