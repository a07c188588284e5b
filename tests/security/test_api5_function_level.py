"""API5:2023 Broken Function Level Authorization.

Administrative functions are for admins: the API's, the dashboard's, and the operator's
``flask create-admin``, which once handed admin rights to whoever had registered the
address first (their own password then logged in as admin).
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import SERVICES, _service_environ, json_of
from tests.factories import create_user
from tests.security.support import LOGIN, admin_sign_in
from tests.support.processes import ROOT

OPERATOR_PASSWORD = "Operator-Chosen-Passphrase-4"


def login_status(client: FlaskClient, email: str, password: str) -> int:
    return client.post(LOGIN, json={"email": email, "password": password}).status_code


def test_create_admin_leaves_an_existing_account_alone_without_promote(app: Flask, client: FlaskClient) -> None:
    squatter = create_user(app, email="boss@example.com")  # registered the address first
    result = app.test_cli_runner().invoke(args=["create-admin", "boss@example.com"], input=OPERATOR_PASSWORD + "\n")
    assert result.exit_code != 0 and "--promote" in result.output
    assert json_of(client.get("/api/v1/users/me", headers=squatter.headers))["data"]["role"] == "customer"
    assert login_status(client, squatter.email, squatter.password) == 200
    assert login_status(client, squatter.email, OPERATOR_PASSWORD) == 401


def test_promote_sets_the_operators_password_and_ends_every_session(app: Flask, client: FlaskClient) -> None:
    squatter = create_user(app, email="boss@example.com")
    result = app.test_cli_runner().invoke(
        args=["create-admin", "boss@example.com", "--promote"], input=OPERATOR_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert client.get("/api/v1/users/me", headers=squatter.headers).status_code == 401  # sessions ended
    assert login_status(client, squatter.email, squatter.password) == 401  # the old password is gone
    tokens = json_of(client.post(LOGIN, json={"email": squatter.email, "password": OPERATOR_PASSWORD}))["data"]
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert json_of(me)["data"]["role"] == "admin"


def test_promote_enforces_the_password_policy(app: Flask, client: FlaskClient) -> None:
    user = create_user(app, email="boss@example.com")
    result = app.test_cli_runner().invoke(args=["create-admin", user.email, "--promote"], input="Password1234\n")
    assert result.exit_code != 0
    assert json_of(client.get("/api/v1/users/me", headers=user.headers))["data"]["role"] == "customer"


def _become_session_leader_with_terminal(slave_name: str) -> None:
    fd = os.open(slave_name, os.O_RDWR)  # a session leader's first terminal is its controlling one
    os.close(fd)


def test_a_piped_password_is_read_from_stdin_even_with_a_terminal_around() -> None:
    """getpass reads /dev/tty, not stdin: with a terminal present, `echo pw | flask
    create-admin` hung waiting for typing (and warned where there was none)."""
    env = {**_service_environ(), "FLASK_APP": "wsgi", "APP_ENV": "development"}
    env["DATABASE_URL"] = env["TEST_DATABASE_URL"]
    env.pop("REDIS_URL", None)
    if SERVICES:
        env["REDIS_URL"] = env["TEST_REDIS_URL"]
    master, slave = pty.openpty()
    terminal = os.ttyname(slave)
    try:
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "flask"), "create-admin", "tty@example.com"],
            input=OPERATOR_PASSWORD + "\n",
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=30,  # getpass would wait on the terminal for ever
            start_new_session=True,
            preexec_fn=lambda: _become_session_leader_with_terminal(terminal),
        )
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Created admin tty@example.com" in proc.stdout
    assert "Warning" not in proc.stderr and "Password" not in proc.stdout


def test_administration_is_for_admins(app: Flask, client: FlaskClient) -> None:
    customer, staff, admin = create_user(app), create_user(app, role="staff"), create_user(app, role="admin")
    assert client.get("/api/v1/users", headers=customer.headers).status_code == 403
    assert client.get("/api/v1/users", headers=staff.headers).status_code == 403
    assert (
        client.patch(f"/api/v1/users/{customer.id}", json={"role": "admin"}, headers=staff.headers).status_code == 403
    )
    assert client.get("/api/v1/users", headers=admin.headers).status_code == 200
    product = {"sku": "S-1", "name": "N", "price": "1.00", "stock": 1}
    assert client.post("/api/v1/products", json=product, headers=customer.headers).status_code == 403
    order_path = "/api/v1/orders/00000000-0000-7000-8000-000000000000/ship"
    assert client.post(order_path, json={}, headers=customer.headers).status_code == 403


def test_staff_cannot_sign_in_to_the_dashboard(app: Flask, client: FlaskClient) -> None:
    staff = create_user(app, role="staff")
    assert admin_sign_in(client, staff.email, staff.password).status_code == 401
    if SERVICES:
        assert client.get("/admin/rq/0/data/queues.json", headers=staff.headers).status_code == 403
        assert client.get("/admin/rq/0/data/queues.json").status_code == 401
