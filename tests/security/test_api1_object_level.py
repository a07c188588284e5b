"""API1:2023 Broken Object Level Authorization.

Two real users: whatever id one of them sends, the other's objects do not exist for
them (404, never 403: existence is not leaked), and nothing of theirs changes.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import create_user
from tests.orders.conftest import ADDRESS, make_product, stock_of


def test_another_customers_order_does_not_exist_for_you(app: Flask, client: FlaskClient) -> None:
    alice, mallory = create_user(app), create_user(app)
    product = make_product(app, stock=5)
    body = {"items": [{"product_id": product, "quantity": 2}], "shipping_address": ADDRESS}
    order = json_of(client.post("/api/v1/orders", json=body, headers=alice.headers))["data"]["id"]
    for method, path in (
        ("get", f"/api/v1/orders/{order}"),
        ("get", f"/api/v1/orders/{order}/events"),
        ("post", f"/api/v1/orders/{order}/pay"),
        ("post", f"/api/v1/orders/{order}/cancel"),
    ):
        response = getattr(client, method)(path, json={} if method == "post" else None, headers=mallory.headers)
        assert response.status_code == 404, (method, path)
    assert json_of(client.get(f"/api/v1/orders/{order}", headers=alice.headers))["data"]["status"] == "pending"
    assert stock_of(app, product) == 3
    assert json_of(client.get("/api/v1/orders", headers=mallory.headers))["data"] == []
    assert client.get(f"/api/v1/orders?user_id={alice.id}", headers=mallory.headers).status_code == 422


def test_another_users_session_does_not_exist_for_you(app: Flask, client: FlaskClient) -> None:
    alice, mallory = create_user(app), create_user(app)
    assert client.delete(f"/api/v1/auth/sessions/{alice.session_id}", headers=mallory.headers).status_code == 404
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    listed = json_of(client.get("/api/v1/auth/sessions", headers=mallory.headers))["data"]
    assert alice.session_id not in {s["id"] for s in listed}


def test_a_customer_cannot_read_another_account(app: Flask, client: FlaskClient) -> None:
    alice, mallory = create_user(app), create_user(app)
    response = client.get(f"/api/v1/users/{alice.id}", headers=mallory.headers)
    assert response.status_code == 403  # the whole function is the admin's (API5), for any id
    assert alice.email not in response.get_data(as_text=True)
