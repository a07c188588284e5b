"""API6:2023 Unrestricted Access to Sensitive Business Flows.

Placing an order holds stock. A new account once took a product's whole stock with one
unpaid order, forever. Now: unpaid orders expire (the clock restocks them exactly once,
whatever runs beside it), a customer holds at most ORDER_MAX_PENDING of them (race-safe),
and every state transition is atomic on SQLite too. Races run with real threads, on
SQLite in ``make test`` and on PostgreSQL in the services run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker

from app.db import db, utcnow
from app.extensions import redis_queues
from app.orders import expiry, pricing, service
from app.orders.models import Order, OrderEvent
from app.products.models import INT_MAX, Product
from app.schedule import build_scheduler
from tests.conftest import json_of
from tests.factories import AuthedUser, create_user
from tests.orders.conftest import ADDRESS, make_product, stock_of


def place(client: FlaskClient, user: AuthedUser, product: str, quantity: int = 1) -> Any:
    body = {"items": [{"product_id": product, "quantity": quantity}], "shipping_address": ADDRESS}
    return client.post("/api/v1/orders", json=body, headers=user.headers)


def placed(client: FlaskClient, user: AuthedUser, product: str, quantity: int = 1) -> str:
    response = place(client, user, product, quantity)
    assert response.status_code == 201, response.get_data(as_text=True)
    order_id: str = json_of(response)["data"]["id"]
    return order_id


def age(app: Flask, order_id: str, minutes: int) -> None:
    with app.app_context():
        db.session.execute(
            sa.update(Order)
            .where(Order.id == uuid.UUID(order_id))
            .values(created_at=utcnow() - timedelta(minutes=minutes))
        )
        db.session.commit()


def status_of(app: Flask, order_id: str) -> str:
    with app.app_context():
        order = db.session.get(Order, uuid.UUID(order_id))
        assert order is not None
        return order.status


def events_of(app: Flask, order_id: str) -> list[tuple[str | None, str, str | None, uuid.UUID | None]]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(OrderEvent).where(OrderEvent.order_id == uuid.UUID(order_id)).order_by(OrderEvent.at)
        )
        return [(e.from_status, e.to_status, e.reason, e.actor_id) for e in rows]


def test_the_clock_cancels_unpaid_orders_and_restocks_them_once(
    app: Flask, client: FlaskClient, run_jobs: Callable[[], int]
) -> None:
    product = make_product(app, stock=95)
    hoarder, buyer, payer = create_user(app), create_user(app), create_user(app)
    hoarded = placed(client, hoarder, product, 90)  # a new account takes nearly everything
    fresh = placed(client, buyer, product, 2)
    paid = placed(client, payer, product, 3)
    assert client.post(f"/api/v1/orders/{paid}/pay", headers=payer.headers).status_code == 200
    assert stock_of(app, product) == 0
    age(app, hoarded, 31)
    age(app, paid, 31)
    age(app, fresh, 29)

    with app.app_context():  # what the clock process does every minute
        scheduler = build_scheduler(redis_queues.connection)
        assert "unpaid-orders" in [job.name for job in scheduler.enqueue_jobs()]
    run_jobs()

    assert status_of(app, hoarded) == "cancelled"
    assert events_of(app, hoarded)[-1] == ("pending", "cancelled", "payment_timeout", None)
    assert (status_of(app, fresh), status_of(app, paid)) == ("pending", "paid")
    assert stock_of(app, product) == 90
    with app.app_context():
        assert expiry.cancel_unpaid() == 0  # nothing twice
    assert stock_of(app, product) == 90
    # The customer sees it, and cannot pay it any more.
    order = json_of(client.get(f"/api/v1/orders/{hoarded}", headers=hoarder.headers))["data"]
    assert order["status"] == "cancelled" and order["cancelled_at"]
    assert client.post(f"/api/v1/orders/{hoarded}/pay", headers=hoarder.headers).status_code == 409


def test_an_order_past_its_payment_window_cannot_be_paid_whether_or_not_the_clock_ran(
    app: Flask, client: FlaskClient
) -> None:
    """The hold ends at ``ORDER_PAYMENT_MINUTES`` whatever the clock does (it runs every
    minute, later if its queue is held up): a payment after that cancels the order as the
    clock would, stock back once, and is refused; a payment just within it goes through."""
    product = make_product(app, stock=10)
    late, on_time = create_user(app), create_user(app)
    expired, within = placed(client, late, product, 4), placed(client, on_time, product, 1)
    age(app, expired, 31)
    age(app, within, 29)
    response = client.post(f"/api/v1/orders/{expired}/pay", headers=late.headers)
    assert response.status_code == 409, response.get_data(as_text=True)
    error = json_of(response)["error"]
    assert error["code"] == "INVALID_STATE" and "30 minutes" in error["message"]
    assert status_of(app, expired) == "cancelled"
    assert events_of(app, expired)[-1] == ("pending", "cancelled", "payment_timeout", None)
    assert stock_of(app, product) == 9
    assert client.post(f"/api/v1/orders/{expired}/pay", headers=late.headers).status_code == 409
    with app.app_context():
        assert expiry.cancel_unpaid() == 0  # nothing left for the clock, nothing restocked twice
    assert stock_of(app, product) == 9
    assert client.post(f"/api/v1/orders/{within}/pay", headers=on_time.headers).status_code == 200


@pytest.mark.services
def test_a_backlog_of_mail_does_not_hold_up_the_expiry_of_unpaid_orders(app: Flask, client: FlaskClient) -> None:
    """Anyone can fill the mail queue (a reset link for any address): the clock's jobs go on
    a queue workers serve first, so an expired hold ends with the next job a worker takes."""
    product = make_product(app, stock=5)
    hoarder = create_user(app)
    order = placed(client, hoarder, product, 5)
    age(app, order, 31)
    for n in range(30):
        response = client.post(
            "/api/v1/auth/password/forgot",
            json={"email": f"nobody{n}@example.com"},
            environ_base={"REMOTE_ADDR": f"203.0.113.{n + 1}"},
        )
        assert response.status_code == 202, response.get_data(as_text=True)
    with app.app_context():
        mail = redis_queues.queue("mail")
        backlog = mail.count
        assert backlog >= 30
        build_scheduler(redis_queues.connection).enqueue_jobs()  # the clock, after the flood
        worker = SimpleWorker(redis_queues.all_queues(), connection=redis_queues.connection)
        worker.work(burst=True, max_jobs=3, with_scheduler=False)  # the clock's three short jobs
        assert mail.count >= backlog  # no mail was sent before them
    assert (status_of(app, order), stock_of(app, product)) == ("cancelled", 5)


def set_stock(app: Flask, product: str, stock: int) -> None:
    with app.app_context():
        db.session.execute(sa.update(Product).where(Product.id == uuid.UUID(product)).values(stock=stock))
        db.session.commit()


def test_a_cancel_returns_stock_up_to_the_largest_a_product_holds(app: Flask, client: FlaskClient) -> None:
    """Staff may set a stock to the most it can hold while an order holds units of it:
    the cancel still succeeds (it used to overflow the column: a 422 nobody could get past,
    and a clock that failed on that order every minute)."""
    product = make_product(app, stock=INT_MAX)
    customer = create_user(app)
    order = placed(client, customer, product, 5)
    set_stock(app, product, INT_MAX - 2)
    assert client.post(f"/api/v1/orders/{order}/cancel", headers=customer.headers).status_code == 200
    assert stock_of(app, product) == INT_MAX
    expired = placed(client, customer, product, 7)
    set_stock(app, product, INT_MAX)
    age(app, expired, 31)
    with app.app_context():
        assert expiry.cancel_unpaid() == 1
    assert (status_of(app, expired), stock_of(app, product)) == ("cancelled", INT_MAX)


def test_an_order_the_clock_cannot_cancel_holds_up_no_other(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = make_product(app, stock=10)
    first, second = create_user(app), create_user(app)
    stuck, later = placed(client, first, product, 2), placed(client, second, product, 3)
    age(app, stuck, 40)
    age(app, later, 35)
    expire = service.expire

    def failing_for_one(*, order_id: uuid.UUID, reason: str) -> bool:
        if str(order_id) == stuck:
            raise RuntimeError("a failure of this order alone")
        return expire(order_id=order_id, reason=reason)

    monkeypatch.setattr(service, "expire", failing_for_one)
    with app.app_context(), pytest.raises(expiry.ExpiryFailed, match="1 of 2"):
        expiry.cancel_unpaid()
    assert (status_of(app, stuck), status_of(app, later), stock_of(app, product)) == ("pending", "cancelled", 8)


def test_at_most_three_unpaid_orders_per_customer(app: Flask, client: FlaskClient) -> None:
    product = make_product(app, stock=100)
    customer, other = create_user(app), create_user(app)
    first = placed(client, customer, product)
    for _ in range(2):
        placed(client, customer, product)
    fourth = place(client, customer, product)
    assert fourth.status_code == 409
    assert json_of(fourth)["error"]["code"] == "CONFLICT"
    assert stock_of(app, product) == 97  # the refused order took nothing
    placed(client, other, product)  # per customer
    assert client.post(f"/api/v1/orders/{first}/pay", headers=customer.headers).status_code == 200
    placed(client, customer, product)  # paying one frees a place


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_placements_at_once_cannot_pass_the_cap_together(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = make_product(app, stock=100)
    customer = create_user(app)
    for _ in range(2):
        placed(client, customer, product)
    totals = pricing.totals

    def slow_totals(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)  # after the count, before the insert: both would have counted 2
        return totals(*args, **kwargs)

    monkeypatch.setattr(pricing, "totals", slow_totals)
    responses = race([lambda: place(app.test_client(), customer, product)] * 2)
    assert sorted(r.status_code for r in responses) == [201, 409], [r.get_data(as_text=True) for r in responses]
    with app.app_context():
        pending = db.session.scalar(sa.select(sa.func.count()).select_from(Order).where(Order.status == "pending"))
    assert pending == 3
    assert stock_of(app, product) == 97


@pytest.fixture
def overlapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transition lingers after reading the order: concurrent ones all read the same
    status before any writes (only an atomic write keeps the second from succeeding too)."""
    transition = service._transition

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)
        return transition(*args, **kwargs)

    monkeypatch.setattr(service, "_transition", slow)


def post_status(app: Flask, path: str, user: AuthedUser) -> int:
    return app.test_client().post(path, json={}, headers=user.headers).status_code


@pytest.mark.usefixtures("overlapping")
def test_two_cancels_at_once_restock_once(app: Flask, client: FlaskClient) -> None:
    product = make_product(app, stock=3)
    customer = create_user(app)
    order = placed(client, customer, product, 3)
    statuses = race([lambda: post_status(app, f"/api/v1/orders/{order}/cancel", customer)] * 2)
    assert sorted(statuses) == [200, 409]
    assert stock_of(app, product) == 3
    assert [e[1] for e in events_of(app, order)] == ["pending", "cancelled"]


@pytest.mark.usefixtures("overlapping")
def test_the_clock_beside_a_payment_restocks_exactly_once_or_not_at_all(app: Flask, client: FlaskClient) -> None:
    product = make_product(app, stock=5)
    customer = create_user(app)
    order = placed(client, customer, product, 5)
    age(app, order, 31)

    def clock() -> int:
        with app.app_context():
            return expiry.cancel_unpaid()

    pay_status, cancelled = race([lambda: post_status(app, f"/api/v1/orders/{order}/pay", customer), clock])
    # Past its window the order is never paid: whichever of the two takes it first cancels
    # it (the other finds it cancelled), and the stock is back exactly once.
    assert pay_status == 409 and cancelled in (0, 1)
    assert (status_of(app, order), stock_of(app, product)) == ("cancelled", 5)
    assert [e[1:3] for e in events_of(app, order)] == [("pending", None), ("cancelled", "payment_timeout")]


@pytest.mark.usefixtures("overlapping")
def test_the_clock_beside_a_cancel_restocks_once(app: Flask, client: FlaskClient) -> None:
    product = make_product(app, stock=4)
    customer = create_user(app)
    order = placed(client, customer, product, 4)
    age(app, order, 31)

    def clock() -> int:
        with app.app_context():
            return expiry.cancel_unpaid()

    cancel_status, cancelled = race([lambda: post_status(app, f"/api/v1/orders/{order}/cancel", customer), clock])
    assert sorted([cancel_status == 200, cancelled == 1]) == [False, True]
    assert stock_of(app, product) == 4
    assert status_of(app, order) == "cancelled"
    assert len(events_of(app, order)) == 2
