"""GET /orders: own orders for customers, everyone's for staff, filters, sort, both styles."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import create_user
from tests.orders.conftest import created, make_product
from tests.support.sql import count_selects


def test_customers_see_only_their_orders_and_staff_see_all(
    app: Flask, client: FlaskClient, place: Callable[..., Any]
) -> None:
    alice, bob, staff = create_user(app), create_user(app), create_user(app, role="staff")
    product = make_product(app, stock=100)
    mine = {created(place(alice, [(product, 1)]))["id"] for _ in range(3)}
    theirs = {created(place(bob, [(product, 1)]))["id"] for _ in range(2)}

    alice_ids = {o["id"] for o in json_of(client.get("/api/v1/orders", headers=alice.headers))["data"]}
    assert alice_ids == mine
    assert client.get(f"/api/v1/orders?user_id={bob.id}", headers=alice.headers).status_code == 422
    all_ids = {o["id"] for o in json_of(client.get("/api/v1/orders", headers=staff.headers))["data"]}
    assert all_ids == mine | theirs
    bob_ids = {o["id"] for o in json_of(client.get(f"/api/v1/orders?user_id={bob.id}", headers=staff.headers))["data"]}
    assert bob_ids == theirs


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01",  # a date alone
        "2026-W01",  # a week date
        "2026-01-01T00:00:00",  # no offset
        "9999-12-31T23:00:00-01:00",  # past year 9999 in UTC (was a 500)
        "0001-01-01T00:00:00+05:00",  # before year 1 in UTC (was a 500)
        "2026-02-30T00:00:00Z",
    ],
)
def test_a_date_time_filter_takes_exactly_rfc_3339(app: Flask, client: FlaskClient, value: str) -> None:
    """``format: date-time`` is what the document says, and all the API takes."""
    customer = create_user(app)
    for name in ("created_after", "created_before"):
        response = client.get("/api/v1/orders", query_string={name: value}, headers=customer.headers)
        assert response.status_code == 422, (name, value)
        assert [d["field"] for d in json_of(response)["error"]["details"]] == [name]
    for good in ("2026-01-01T00:00:00Z", "2026-01-01t01:30:00.123456789+01:30", "9999-12-31T23:59:59Z"):
        assert (
            client.get("/api/v1/orders", query_string={"created_after": good}, headers=customer.headers).status_code
            == 200
        )


def test_filters_and_sort(app: Flask, client: FlaskClient, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    cheap, dear = make_product(app, price="1.00", stock=100), make_product(app, price="50.00", stock=100)
    first = created(place(customer, [(cheap, 1)]))
    second = created(place(customer, [(dear, 2)]))
    third = created(place(customer, [(cheap, 3)]))
    client.post(f"/api/v1/orders/{second['id']}/pay", json={}, headers=customer.headers)

    def ids(query: str) -> list[str]:
        response = client.get(f"/api/v1/orders?{query}", headers=customer.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [o["id"] for o in json_of(response)["data"]]

    assert ids("") == [third["id"], second["id"], first["id"]]  # newest first by default
    assert ids("sort=total") == [first["id"], third["id"], second["id"]]
    assert ids("sort=-total&limit=2") == [second["id"], third["id"]]
    assert ids("status=paid") == [second["id"]]
    assert ids(f"created_after={second['created_at']}&sort=created_at") == [second["id"], third["id"]]
    assert ids(f"created_before={second['created_at']}") == [first["id"]]
    assert client.get("/api/v1/orders?status=lost", headers=customer.headers).status_code == 422
    assert client.get("/api/v1/orders?sort=number", headers=customer.headers).status_code == 422
    totals = [
        Decimal(o["total"]) for o in json_of(client.get("/api/v1/orders?sort=-total", headers=customer.headers))["data"]
    ]
    assert totals == sorted(totals, reverse=True)


def test_cursor_walk_and_statement_count(
    app: Flask, client: FlaskClient, place: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One customer with a dozen unpaid orders: above the everyday cap and placement limit.
    monkeypatch.setitem(app.config, "ORDER_MAX_PENDING", 20)
    monkeypatch.setitem(app.config, "RATELIMIT_ORDERS", "100 per minute")
    customer = create_user(app)
    products = [make_product(app, stock=100) for _ in range(3)]
    placed = {created(place(customer, [(p, 1) for p in products]))["id"] for _ in range(12)}
    seen: list[str] = []
    url = "/api/v1/orders?limit=5"
    while url:
        body = json_of(client.get(url, headers=customer.headers))
        seen.extend(o["id"] for o in body["data"])
        assert all(len(o["items"]) == 3 for o in body["data"])
        url = f"/api/v1/orders?limit=5&cursor={body['meta']['next_cursor']}" if body["meta"]["has_more"] else ""
    assert len(seen) == len(set(seen)) == 12 and set(seen) == placed

    counts = []
    for size in (2, 12):
        with count_selects(app) as statements:
            assert client.get(f"/api/v1/orders?per_page={size}", headers=customer.headers).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1]
