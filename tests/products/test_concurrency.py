"""Races on PostgreSQL with real threads: the unique indexes and the version column decide."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.products.builders import CATEGORIES, PRODUCTS, make_product, product_body

pytestmark = pytest.mark.services

ROUNDS = 5


def race(app: Flask, requests: list[Callable[[Any], Any]]) -> list[Any]:
    """Run each request in its own thread with its own test client, released together."""
    barrier = threading.Barrier(len(requests))
    responses: list[Any] = [None] * len(requests)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            responses[i] = requests[i](client)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)
    return responses


def test_duplicate_sku_under_concurrent_creates_is_one_201_and_one_409(app: Flask, staff: AuthedUser) -> None:
    for n in range(ROUNDS):
        bodies = [product_body(sku=f"RACE-{n}", name=f"Racer {n} {side}") for side in ("a", "b")]
        responses = race(app, [lambda c, b=b: c.post(PRODUCTS, json=b, headers=staff.headers) for b in bodies])
        assert sorted(r.status_code for r in responses) == [201, 409], [r.get_json() for r in responses]
        conflict = next(r for r in responses if r.status_code == 409)
        assert [d["field"] for d in json_of(conflict)["error"]["details"]] == ["sku"]
    listed = json_of(app.test_client().get(f"{PRODUCTS}?q=RACE-&per_page=100"))
    assert listed["meta"]["total"] == ROUNDS


def test_same_name_under_concurrent_creates_gets_two_slugs(app: Flask, staff: AuthedUser) -> None:
    for n in range(ROUNDS):
        bodies = [product_body(name=f"Twin {n}") for _ in range(2)]
        responses = race(app, [lambda c, b=b: c.post(PRODUCTS, json=b, headers=staff.headers) for b in bodies])
        assert [r.status_code for r in responses] == [201, 201], [r.get_json() for r in responses]
        slugs = sorted(json_of(r)["data"]["slug"] for r in responses)
        assert slugs == [f"twin-{n}", f"twin-{n}-2"]


def test_concurrent_updates_with_the_same_if_match_one_wins(app: Flask, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app, stock=0)}"
    for n in range(ROUNDS):
        etag = app.test_client().get(url).headers["ETag"]
        headers = {**staff.headers, "If-Match": etag}
        stocks = (10 * n + 1, 10 * n + 2)  # always a real change
        responses = race(app, [lambda c, s=s, h=headers: c.patch(url, json={"stock": s}, headers=h) for s in stocks])
        assert sorted(r.status_code for r in responses) == [200, 412], [r.get_json() for r in responses]
        winner = next(r for r in responses if r.status_code == 200)
        current = app.test_client().get(url)
        assert current.headers["ETag"] == winner.headers["ETag"]
        assert json_of(current)["data"]["stock"] == json_of(winner)["data"]["stock"]
    assert json_of(app.test_client().get(url))["data"]["version"] == 1 + ROUNDS


def test_concurrent_updates_without_if_match_never_lose_a_version(app: Flask, staff: AuthedUser) -> None:
    url = f"{PRODUCTS}/{make_product(app, stock=0)}"
    successes = 0
    for n in range(ROUNDS):
        stocks = (10 * n + 1, 10 * n + 2, 10 * n + 3)  # always a real change
        responses = race(app, [lambda c, s=s: c.patch(url, json={"stock": s}, headers=staff.headers) for s in stocks])
        statuses = [r.status_code for r in responses]
        # Without If-Match each applies to the product as it is: one after another (the row
        # is locked), each with a version of its own, none refused and none lost.
        assert statuses == [200, 200, 200], statuses
        winners = [json_of(r)["data"]["version"] for r in responses if r.status_code == 200]
        assert len(winners) == len(set(winners))
        successes += len(winners)
    assert json_of(app.test_client().get(url))["data"]["version"] == 1 + successes


def test_an_update_answers_with_the_version_it_wrote_though_another_commits_right_after(
    app: Flask, staff: AuthedUser
) -> None:
    """The answer (and its ETag) is what this request committed: had it been read again
    after the commit, a writer committing in between would lend it its version, and this
    client would overwrite that writer's change with If-Match."""
    url = f"{PRODUCTS}/{make_product(app, stock=0)}"
    second: list[Any] = []

    def another_writer_commits(session: Session) -> None:
        if second:
            return
        second.append(None)
        writer = threading.Thread(
            target=lambda: second.append(app.test_client().patch(url, json={"stock": 2}, headers=staff.headers))
        )
        writer.start()
        writer.join(timeout=30)

    sa.event.listen(Session, "after_commit", another_writer_commits)
    try:
        first = app.test_client().patch(url, json={"stock": 1}, headers=staff.headers)
    finally:
        sa.event.remove(Session, "after_commit", another_writer_commits)
    later = second[1]
    assert first.status_code == later.status_code == 200, (first.get_data(), later.get_data())
    assert json_of(first)["data"]["stock"] == 1 and json_of(first)["data"]["version"] == 2
    assert json_of(later)["data"]["stock"] == 2 and json_of(later)["data"]["version"] == 3
    assert first.headers["ETag"] != later.headers["ETag"]


@pytest.mark.parametrize("path", [PRODUCTS, CATEGORIES])
def test_many_creates_of_one_name_at_once_all_get_a_slug(app: Flask, staff: AuthedUser, path: str) -> None:
    """A client that sends no slug cannot settle a conflict over one: eight creates of one
    name at once (each round of the race won by one of them) are eight 201s."""
    for n in range(3):
        bodies = [product_body(name=f"Crowd {n}") if path == PRODUCTS else {"name": f"Crowd {n}"} for _ in range(8)]
        responses = race(app, [lambda c, b=b: c.post(path, json=b, headers=staff.headers) for b in bodies])
        assert [r.status_code for r in responses] == [201] * 8, [r.get_json() for r in responses]
        slugs = {json_of(r)["data"]["slug"] for r in responses}
        assert len(slugs) == 8 and f"crowd-{n}" in slugs
        assert all(slug.startswith(f"crowd-{n}") for slug in slugs)


def test_a_staff_edit_without_if_match_is_not_refused_for_a_sale_landing_meanwhile(
    app: Flask, staff: AuthedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sale changes the product's version (its stock is part of it). A staff change sent
    without If-Match applies to the product as it is: a sale that lands while it is being
    made waits for it, rather than failing it with a 409 (with If-Match: a 412, as asked)."""
    import time

    from app.products import service
    from tests.factories import create_user
    from tests.orders.conftest import ADDRESS

    product_id = make_product(app, stock=5)
    customer = create_user(app)
    for_write = service._for_write

    def lingering(*args: Any, **kwargs: Any) -> Any:
        found = for_write(*args, **kwargs)
        time.sleep(0.4)  # the sale is sent meanwhile
        return found

    monkeypatch.setattr(service, "_for_write", lingering)
    order = {"items": [{"product_id": product_id, "quantity": 2}], "shipping_address": ADDRESS}
    url = f"{PRODUCTS}/{product_id}"
    for method, body in (("patch", {"name": "Renamed"}), ("delete", None)):
        responses = race(
            app,
            [
                lambda c, m=method, b=body: getattr(c, m)(url, json=b, headers=staff.headers),
                lambda c: (time.sleep(0.15), c.post("/api/v1/orders", json=order, headers=customer.headers))[1],
            ],
        )
        edit, sale = responses
        assert edit.status_code in (200, 204), edit.get_data(as_text=True)
        assert sale.status_code in (201, 422), sale.get_data(as_text=True)  # after a delete: no such product
