"""The state machine, who may move an order, restocking, and the status history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db
from app.mail.models import OutboxMail
from tests.conftest import json_of
from tests.factories import AuthedUser, create_user
from tests.orders.conftest import created, make_product, stock_of
from tests.support.mailbox import Mailbox


def outbox_size(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMail)) or 0)


def act(client: FlaskClient, user: AuthedUser, order_id: str, action: str, **body: Any) -> Any:
    return client.post(f"/api/v1/orders/{order_id}/{action}", json=body, headers=user.headers)


def status_of(client: FlaskClient, user: AuthedUser, order_id: str) -> str:
    return str(json_of(client.get(f"/api/v1/orders/{order_id}", headers=user.headers))["data"]["status"])


def test_full_lifecycle_with_events_timestamps_and_mail(
    app: Flask, client: FlaskClient, place: Callable[..., Any], mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    customer, staff = create_user(app), create_user(app, role="staff")
    order = created(place(customer, [(make_product(app), 1)]))
    paid = json_of(act(client, customer, order["id"], "pay"))["data"]
    assert paid["status"] == "paid" and paid["paid_at"].endswith("Z")
    shipped = json_of(act(client, staff, order["id"], "ship", tracking_number="1Z999"))["data"]
    assert shipped["status"] == "shipped" and shipped["tracking_number"] == "1Z999" and shipped["shipped_at"]
    delivered = json_of(act(client, staff, order["id"], "deliver"))["data"]
    assert delivered["status"] == "delivered" and delivered["delivered_at"]

    events = json_of(client.get(f"/api/v1/orders/{order['id']}/events", headers=customer.headers))["data"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "pending"),
        ("pending", "paid"),
        ("paid", "shipped"),
        ("shipped", "delivered"),
    ]
    assert [e["actor_id"] for e in events] == [customer.id, customer.id, staff.id, staff.id]
    assert set(events[0]) == {"from_status", "to_status", "actor_id", "reason", "at"}
    run_jobs()
    shipped_mail = [m for m in mailbox.to(customer.email) if "shipped" in m["Subject"]]
    assert len(shipped_mail) == 1 and "1Z999" in Mailbox.text_of(shipped_mail[0])


ILLEGAL = [
    ("pending", "ship"),
    ("pending", "deliver"),
    ("paid", "pay"),
    ("paid", "deliver"),
    ("shipped", "pay"),
    ("shipped", "ship"),
    ("shipped", "cancel"),
    ("delivered", "pay"),
    ("delivered", "ship"),
    ("delivered", "deliver"),
    ("delivered", "cancel"),
    ("cancelled", "pay"),
    ("cancelled", "ship"),
    ("cancelled", "deliver"),
    ("cancelled", "cancel"),
]


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_illegal_transitions_are_409_and_change_nothing(
    app: Flask, client: FlaskClient, place: Callable[..., Any], state: str, action: str
) -> None:
    customer, staff = create_user(app), create_user(app, role="staff")
    product = make_product(app, stock=5)
    order = created(place(customer, [(product, 2)]))
    path = {"pending": [], "paid": ["pay"], "shipped": ["pay", "ship"], "delivered": ["pay", "ship", "deliver"]}
    for step in path.get(state, ["cancel"]):
        assert act(client, customer if step in ("pay", "cancel") else staff, order["id"], step).status_code == 200
    before = json_of(client.get(f"/api/v1/orders/{order['id']}", headers=customer.headers))["data"]
    events_before = json_of(client.get(f"/api/v1/orders/{order['id']}/events", headers=customer.headers))["data"]
    stock_before, mail_before = stock_of(app, product), outbox_size(app)

    actor = customer if action in ("pay", "cancel") else staff
    response = act(client, actor, order["id"], action)
    assert response.status_code == 409
    assert json_of(response)["error"]["code"] == "INVALID_STATE"
    assert json_of(client.get(f"/api/v1/orders/{order['id']}", headers=customer.headers))["data"] == before
    events = json_of(client.get(f"/api/v1/orders/{order['id']}/events", headers=customer.headers))["data"]
    assert events == events_before
    assert stock_of(app, product) == stock_before
    assert outbox_size(app) == mail_before


def test_cancel_restocks_exactly_once_and_refunds_a_paid_order(
    app: Flask, client: FlaskClient, place: Callable[..., Any], mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    customer = create_user(app)
    a, b = make_product(app, stock=10, price="7.50"), make_product(app, stock=4)
    order = created(place(customer, [(a, 3), (b, 4)]))
    assert (stock_of(app, a), stock_of(app, b)) == (7, 0)
    act(client, customer, order["id"], "pay")
    cancelled = json_of(act(client, customer, order["id"], "cancel", reason="Changed my mind"))["data"]
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    assert cancelled["refunded_amount"] == cancelled["total"] == "62.50"
    assert (stock_of(app, a), stock_of(app, b)) == (10, 4)
    assert act(client, customer, order["id"], "cancel").status_code == 409
    assert (stock_of(app, a), stock_of(app, b)) == (10, 4)
    events = json_of(client.get(f"/api/v1/orders/{order['id']}/events", headers=customer.headers))["data"]
    assert events[-1]["reason"] == "Changed my mind"
    run_jobs()
    cancel_mail = [m for m in mailbox.to(customer.email) if "cancelled" in m["Subject"]]
    assert len(cancel_mail) == 1 and "62.50 USD" in Mailbox.text_of(cancel_mail[0])


def test_a_pending_cancel_records_no_refund(app: Flask, client: FlaskClient, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    order = created(place(customer, [(make_product(app), 1)]))
    assert json_of(act(client, customer, order["id"], "cancel"))["data"]["refunded_amount"] is None


def test_another_customers_order_is_404_for_everything(
    app: Flask, client: FlaskClient, place: Callable[..., Any]
) -> None:
    alice, bob = create_user(app), create_user(app)
    order = created(place(alice, [(make_product(app), 1)]))
    assert client.get(f"/api/v1/orders/{order['id']}", headers=bob.headers).status_code == 404
    assert client.get(f"/api/v1/orders/{order['id']}/events", headers=bob.headers).status_code == 404
    for action in ("pay", "cancel"):
        response = act(client, bob, order["id"], action)
        assert response.status_code == 404
        assert json_of(response)["error"]["code"] == "NOT_FOUND"
    assert status_of(client, alice, order["id"]) == "pending"


def test_roles_on_transitions(app: Flask, client: FlaskClient, place: Callable[..., Any]) -> None:
    customer, staff = create_user(app), create_user(app, role="staff")
    order = created(place(customer, [(make_product(app), 1)]))
    assert act(client, customer, order["id"], "ship").status_code == 403
    assert act(client, staff, order["id"], "pay").status_code == 403  # only the customer pays
    assert client.get(f"/api/v1/orders/{order['id']}", headers=staff.headers).status_code == 200
    assert act(client, customer, order["id"], "pay").status_code == 200
    assert act(client, customer, order["id"], "deliver").status_code == 403
    assert act(client, staff, order["id"], "cancel", reason="Out of stock at the warehouse").status_code == 200
    assert status_of(client, customer, order["id"]) == "cancelled"
