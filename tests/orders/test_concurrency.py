"""Concurrency on PostgreSQL with real threads: no overselling, no deadlocks, one order per key."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.db import db
from app.orders import idempotency, pricing, service
from app.orders.models import Order, OrderItem
from tests.factories import AuthedUser, create_user
from tests.orders.conftest import ADDRESS, make_product, stock_of

pytestmark = pytest.mark.services


def race(app: Flask, calls: list[tuple[AuthedUser, dict[str, Any], dict[str, str]]]) -> list[Any]:
    """Send every request at the same moment, each from its own thread and client."""
    barrier = threading.Barrier(len(calls))

    def send(call: tuple[AuthedUser, dict[str, Any], dict[str, str]]) -> Any:
        user, body, extra = call
        client = app.test_client()
        barrier.wait()
        return client.post("/api/v1/orders", json=body, headers={**user.headers, **extra})

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(send, calls))


def body(*lines: tuple[str, int]) -> dict[str, Any]:
    return {"items": [{"product_id": p, "quantity": q} for p, q in lines], "shipping_address": ADDRESS}


def orders_written(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(Order)) or 0)


def test_twenty_customers_race_for_the_last_five_units(app: Flask) -> None:
    product = make_product(app, stock=5)
    customers = [create_user(app) for _ in range(20)]
    responses = race(app, [(c, body((product, 1)), {}) for c in customers])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 5 + [409] * 15, [r.get_data(as_text=True) for r in responses if r.status_code >= 500]
    assert all(r.get_json()["error"]["code"] == "INSUFFICIENT_STOCK" for r in responses if r.status_code == 409)
    assert stock_of(app, product) == 0
    assert orders_written(app) == 5
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.sum(OrderItem.quantity))) == 5
    numbers = [r.get_json()["data"]["number"] for r in responses if r.status_code == 201]
    assert len(set(numbers)) == 5


def test_orders_crossing_the_same_products_never_deadlock(app: Flask) -> None:
    a, b = make_product(app, stock=1000), make_product(app, stock=1000)
    customers = [create_user(app) for _ in range(10)]
    calls = [(c, body((a, 1), (b, 1)) if i % 2 else body((b, 1), (a, 1)), {}) for i, c in enumerate(customers)]
    for _ in range(3):
        responses = race(app, calls)
        assert all(r.status_code in (201, 409) for r in responses), [r.get_data(as_text=True) for r in responses]
    created = orders_written(app)
    assert stock_of(app, a) == stock_of(app, b) == 1000 - created
    assert created == 30


def test_last_unit_of_two_products_crossed(app: Flask) -> None:
    a, b = make_product(app, stock=1), make_product(app, stock=1)
    first, second = create_user(app), create_user(app)
    responses = race(app, [(first, body((a, 1), (b, 1)), {}), (second, body((b, 1), (a, 1)), {})])
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert stock_of(app, a) == stock_of(app, b) == 0


def test_the_same_idempotency_key_sent_twice_at_once(app: Flask) -> None:
    product = make_product(app, stock=10)
    customer = create_user(app)
    responses = race(app, [(customer, body((product, 2)), {"Idempotency-Key": "double-click"})] * 2)
    statuses = sorted(r.status_code for r in responses)
    assert statuses in ([201, 201], [201, 409]), [r.get_data(as_text=True) for r in responses]
    if statuses == [201, 201]:
        assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 1
        assert responses[0].get_json() == responses[1].get_json()
    else:
        conflict = next(r for r in responses if r.status_code == 409)
        assert conflict.get_json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert orders_written(app) == 1
    assert stock_of(app, product) == 8


def test_a_key_still_in_flight_is_409(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second request waits on the first one's key row; if the first is still running
    when the wait ends, the answer is 409 IDEMPOTENCY_CONFLICT and nothing is written twice."""
    monkeypatch.setattr(idempotency, "LOCK_WAIT_MS", 200)
    totals = pricing.totals

    def slow_totals(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.5)  # the first request holds its key this long
        return totals(*args, **kwargs)

    monkeypatch.setattr(pricing, "totals", slow_totals)
    product = make_product(app, stock=10)
    customer = create_user(app)
    responses = race(app, [(customer, body((product, 2)), {"Idempotency-Key": "slow-click"})] * 2)
    assert sorted(r.status_code for r in responses) == [201, 409], [r.get_data(as_text=True) for r in responses]
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.get_json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert orders_written(app) == 1
    assert stock_of(app, product) == 8


def test_cancel_sent_twice_at_once_restocks_once(
    app: Flask, run_jobs: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each cancel lingers after reading the order, so the two always overlap: only the
    # row lock keeps the second from reading "pending" too and restocking again.
    transition = service._transition

    def slow_transition(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.3)
        transition(*args, **kwargs)

    monkeypatch.setattr(service, "_transition", slow_transition)
    product = make_product(app, stock=3)
    customer = create_user(app)
    order = app.test_client().post("/api/v1/orders", json=body((product, 3)), headers=customer.headers).get_json()
    barrier = threading.Barrier(2)

    def cancel() -> int:
        client = app.test_client()
        barrier.wait()
        return client.post(
            f"/api/v1/orders/{order['data']['id']}/cancel", json={}, headers=customer.headers
        ).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(lambda _: cancel(), range(2)))
    assert statuses == [200, 409]
    assert stock_of(app, product) == 3
