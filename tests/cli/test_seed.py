"""flask seed: demo catalog and accounts, idempotent, usable at once."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from app.cli import DEMO_PASSWORD
from tests.conftest import json_of


def test_seed_twice_then_use_the_demo_accounts(app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed", "--products", "12"])
    assert first.exit_code == 0, first.output
    assert "12 products created" in first.output
    passwords = dict(re.findall(r"(demo-\w+@example\.com)\s+password: (\S+)", first.output))
    assert set(passwords) == {"demo-staff@example.com", "demo-customer@example.com"}
    # Outside production: the README's documented demo login.
    assert set(passwords.values()) == {DEMO_PASSWORD}

    second = runner.invoke(args=["seed", "--products", "12"])
    assert "0 products created (12 demo products already there)" in second.output
    assert "already exists" in second.output

    listed = json_of(client.get("/api/v1/products?per_page=100"))
    assert listed["meta"]["total"] == 12
    login = client.post(
        "/api/v1/auth/login", json={"email": "demo-staff@example.com", "password": passwords["demo-staff@example.com"]}
    )
    token = json_of(login)["data"]["access_token"]
    me = json_of(client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}))["data"]
    assert me["role"] == "staff"
