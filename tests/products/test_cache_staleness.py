"""Never stale: every kind of catalog write is seen by the very next read of another process.

A second app (gunicorn, as the Procfile runs it) reads on the same PostgreSQL and Redis as
the suite's app, which writes. Each test warms the reader's cache first, so that a read
after the write could only be right if the write made the cached answer unreachable.
Issue 12's imports and issue 11's image readiness call ``catalog_changed`` as the bulk
writes below do; add their own tests here when they land.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db, utcnow
from app.extensions import redis_queues
from app.products import cache
from app.products.cache import catalog_changed
from app.products.models import Product
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.orders.conftest import ADDRESS
from tests.products.builders import CATEGORIES, PRODUCTS, make_category, make_product
from tests.support.processes import http, start_gunicorn, stop, wait_until
from tests.support.services import catalog_cache_at, private_redis, redis_at, unreachable_redis
from tests.support.sql import count_selects

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def reader(app: Flask, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Any]]:
    """GET through another process of the app: returns (status, parsed body)."""
    env = {"APP_ENV": "testing", "WEB_CONCURRENCY": "1", "RATELIMIT_ENABLED": "false"}
    proc, base = start_gunicorn(env, tmp_path_factory.mktemp("reader") / "gunicorn.log")
    try:

        def get(path: str) -> tuple[int, Any]:
            status, body = http("GET", base + path)
            return status, json.loads(body) if body else None

        yield get
    finally:
        stop(proc)


def _warm(reader: Callable[[str], Any], path: str) -> Any:
    """Read twice through the reader (the second answer comes from its cache)."""
    status, body = reader(path)
    assert status == 200, body
    assert reader(path) == (status, body)
    return body


def _entries() -> int:
    return sum(1 for _ in redis_queues.catalog_cache.scan_iter(match=cache.ENTRY_PREFIX + "*"))


def test_the_reader_serves_from_the_cache(app: Flask, reader: Callable[[str], Any]) -> None:
    make_product(app, name="Lamp")
    with app.app_context():
        assert cache.enabled() and _entries() == 0
        _warm(reader, PRODUCTS)
        assert _entries() >= 1


def test_a_created_product_is_listed_at_once(app: Flask, client: FlaskClient, staff: AuthedUser, reader: Any) -> None:
    make_product(app, name="Old")
    assert [p["name"] for p in _warm(reader, PRODUCTS)["data"]] == ["Old"]
    body = {"sku": "NEW-1", "name": "New", "price": "1.00", "stock": 1}
    assert client.post(PRODUCTS, json=body, headers=staff.headers).status_code == 201
    listed = reader(PRODUCTS)[1]
    assert [p["name"] for p in listed["data"]] == ["New", "Old"] and listed["meta"]["total"] == 2


def test_an_updated_product_is_seen_at_once_by_id_slug_and_list(
    app: Flask, client: FlaskClient, staff: AuthedUser, reader: Any
) -> None:
    product_id = make_product(app, name="Lamp", slug="lamp", price=Decimal("9.00"))
    paths = (f"{PRODUCTS}/{product_id}", f"{PRODUCTS}/lamp", f"{PRODUCTS}?q=lamp", f"{PRODUCTS}?limit=5")
    for path in paths:
        _warm(reader, path)
    patch = {"name": "Lamp deluxe", "price": "12.50"}
    assert client.patch(f"{PRODUCTS}/{product_id}", json=patch, headers=staff.headers).status_code == 200
    for path in paths:
        body = reader(path)[1]
        product = body["data"][0] if isinstance(body["data"], list) else body["data"]
        assert (product["name"], product["price"], product["version"]) == ("Lamp deluxe", "12.50", 2), path


def test_a_deleted_or_deactivated_product_is_gone_at_once(
    app: Flask, client: FlaskClient, staff: AuthedUser, reader: Any
) -> None:
    deleted, hidden = make_product(app, name="Deleted"), make_product(app, name="Hidden")
    for path in (f"{PRODUCTS}/{deleted}", f"{PRODUCTS}/{hidden}", PRODUCTS):
        _warm(reader, path)
    assert client.delete(f"{PRODUCTS}/{deleted}", headers=staff.headers).status_code == 204
    assert client.patch(f"{PRODUCTS}/{hidden}", json={"is_active": False}, headers=staff.headers).status_code == 200
    assert reader(f"{PRODUCTS}/{deleted}")[0] == 404
    assert reader(f"{PRODUCTS}/{hidden}")[0] == 404
    assert reader(PRODUCTS)[1]["data"] == []


def test_a_created_category_is_listed_at_once(app: Flask, client: FlaskClient, staff: AuthedUser, reader: Any) -> None:
    make_category(app, "mugs")
    assert len(_warm(reader, CATEGORIES)["data"]) == 1
    assert reader(f"{CATEGORIES}/lamps")[0] == 404
    assert client.post(CATEGORIES, json={"name": "Lamps"}, headers=staff.headers).status_code == 201
    assert [c["slug"] for c in reader(CATEGORIES)[1]["data"]] == ["lamps", "mugs"]
    assert reader(f"{CATEGORIES}/lamps")[0] == 200


def _order(client: FlaskClient, customer: AuthedUser, product_id: str, quantity: int) -> str:
    body = {"items": [{"product_id": product_id, "quantity": quantity}], "shipping_address": ADDRESS}
    response = client.post("/api/v1/orders", json=body, headers=customer.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(json_of(response)["data"]["id"])


def test_stock_from_an_order_and_a_cancel_is_seen_at_once_without_emptying_the_cache(
    app: Flask, client: FlaskClient, customer: AuthedUser, reader: Any
) -> None:
    product_id = make_product(app, name="Mug", stock=3)
    make_product(app, name="Other", stock=9)
    paths = {
        "item": f"{PRODUCTS}/{product_id}",
        "list": f"{PRODUCTS}?sort=name",
        "cursor": f"{PRODUCTS}?limit=10&sort=name",
        "in stock": f"{PRODUCTS}?in_stock=true&sort=name",
    }
    for path in paths.values():
        _warm(reader, path)
    with app.app_context():
        generation = redis_queues.catalog_cache.get(cache.GENERATION_KEY)

    def mug(path: str) -> dict[str, Any] | None:
        status, body = reader(path)
        assert status == 200
        items = body["data"] if isinstance(body["data"], list) else [body["data"]]
        return next((p for p in items if p["id"] == product_id), None)

    order_id = _order(client, customer, product_id, 3)
    for name in ("item", "list", "cursor"):
        seen = mug(paths[name])
        assert seen is not None and (seen["stock"], seen["in_stock"], seen["version"]) == (0, False, 2), name
    assert mug(paths["in stock"]) is None, "sold out: no longer in stock"

    response = client.post(f"/api/v1/orders/{order_id}/cancel", json={}, headers=customer.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    for name in ("item", "list", "cursor", "in stock"):
        seen = mug(paths[name])
        assert seen is not None and (seen["stock"], seen["in_stock"], seen["version"]) == (3, True, 3), name

    with app.app_context():
        # Sales renewed no generation: every page but the in-stock ones stayed cached.
        assert redis_queues.catalog_cache.get(cache.GENERATION_KEY) == generation


def test_after_a_sale_the_next_page_read_runs_no_sql(app: Flask, client: FlaskClient, customer: AuthedUser) -> None:
    product_id = make_product(app, stock=5)
    client.get(PRODUCTS)
    _order(client, customer, product_id, 2)
    with count_selects(app) as statements:
        response = client.get(PRODUCTS)
    assert json_of(response)["data"][0]["stock"] == 3
    assert statements == []


def test_a_filter_sets_total_is_counted_once_for_its_pages_and_again_after_a_write(
    app: Flask, client: FlaskClient, staff: AuthedUser, reader: Any
) -> None:
    """The first page of a filter set counts it (in the page's statement) and keeps the
    total with the page, in one round trip; its other pages and orders read no count; a
    write makes the kept total unreachable at once, in this process and the reader's."""
    for n in range(5):
        make_product(app, name=f"Cup {n}", price=Decimal("3.00"))
    make_product(app, name="Dear", price=Decimal("30.00"))
    with count_selects(app) as first:
        body = json_of(client.get(f"{PRODUCTS}?max_price=10&per_page=2"))
    assert body["meta"]["total"] == 5 and len(first) == 2 and "count(" in first[0].lower()
    for path in (f"{PRODUCTS}?max_price=10&per_page=2&page=3", f"{PRODUCTS}?max_price=10&per_page=4&sort=name"):
        with count_selects(app) as later:
            body = json_of(client.get(path))
        assert body["meta"]["total"] == 5 and not any("count(" in s.lower() for s in later), path
    assert reader(f"{PRODUCTS}?max_price=10&page=2&per_page=3")[1]["meta"]["total"] == 5
    created = {"sku": "CUP-NEW", "name": "Cup new", "price": "4.00", "stock": 1}
    assert client.post(PRODUCTS, json=created, headers=staff.headers).status_code == 201
    assert json_of(client.get(f"{PRODUCTS}?max_price=10&per_page=4&sort=name"))["meta"]["total"] == 6
    assert reader(f"{PRODUCTS}?max_price=10&page=2&per_page=3")[1]["meta"]["total"] == 6


def test_a_sale_is_seen_after_redis_lost_the_caches_scripts(
    app: Flask, client: FlaskClient, customer: AuthedUser, reader: Any
) -> None:
    """After a Redis restart (or ``SCRIPT FLUSH``) the first write's pipeline is refused
    (NOSCRIPT): it loads the scripts and sends its changes again, nothing is lost."""
    product_id = make_product(app, name="Mug", stock=4)
    path = f"{PRODUCTS}/{product_id}"
    _warm(reader, path)
    with app.app_context():
        redis_queues.catalog_cache.script_flush()
    _order(client, customer, product_id, 1)
    status, body = reader(path)
    assert status == 200 and (body["data"]["stock"], body["data"]["version"]) == (3, 2)
    with app.app_context():
        assert redis_queues.catalog_cache.get(cache.STATE_PREFIX + product_id).startswith(b"2|3|")


def test_a_sale_while_redis_is_down_is_committed_and_its_unsent_changes_are_logged(
    app: Flask, client: FlaskClient, customer: AuthedUser, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis unreachable after the commit: the order stands (201, stock taken), the mail
    waits in the outbox for the relay, and the log says the cache was not told."""
    product_id = make_product(app, name="Mug", stock=4)
    with redis_at(app, unreachable_redis()):
        _order(client, customer, product_id, 1)
    with app.app_context():
        product = db.session.get(Product, uuid.UUID(product_id))
        assert product is not None and product.stock == 3
    assert "catalog change not published to the cache" in caplog.text
    assert "it will be relayed later" in caplog.text


def test_a_cached_read_after_redis_lost_the_caches_scripts_is_still_served_from_the_cache(
    app: Flask, client: FlaskClient
) -> None:
    """A read reloads the script Redis lost (NOSCRIPT) instead of going to the database."""
    make_product(app, stock=5)
    client.get(PRODUCTS)
    with app.app_context():
        redis_queues.catalog_cache.script_flush()
    with count_selects(app) as statements:
        response = client.get(PRODUCTS)
    assert response.status_code == 200 and json_of(response)["data"][0]["stock"] == 5
    assert statements == []


def test_a_state_redis_lost_is_read_from_the_database(app: Flask, client: FlaskClient, customer: AuthedUser) -> None:
    product_id = make_product(app, stock=5)
    client.get(PRODUCTS)
    _order(client, customer, product_id, 1)
    with app.app_context():
        redis_queues.catalog_cache.delete(cache.STATE_PREFIX + product_id)
    with count_selects(app) as statements:
        assert json_of(client.get(PRODUCTS))["data"][0]["stock"] == 4
    assert len(statements) == 1


def test_an_older_state_never_replaces_a_newer_one(app: Flask) -> None:
    product_id = str(uuid.uuid4())
    with app.app_context():
        cache.store_states({product_id: cache.State(5, 1, "2026-01-01T00:00:00.000Z")})
        cache.store_states({product_id: cache.State(4, 2, "2025-12-31T00:00:00.000Z")})  # a writer that lagged
        assert cache.states([product_id]) == [cache.State(5, 1, "2026-01-01T00:00:00.000Z")]
        cache.store_states({product_id: cache.State(6, 0, "2026-01-02T00:00:00.000Z")})
        assert cache.states([product_id])[0] == cache.State(6, 0, "2026-01-02T00:00:00.000Z")


def test_bulk_writes_that_call_catalog_changed_are_seen_at_once(app: Flask, reader: Any) -> None:
    """What an import (issue 12), image readiness (issue 11) and the expiry of unpaid orders
    do: bulk statements behind the ORM's back, then ``catalog_changed`` in the transaction."""
    product_id = make_product(app, name="Lamp", stock=2)
    item = f"{PRODUCTS}/{product_id}"
    _warm(reader, item)
    _warm(reader, PRODUCTS)
    with app.app_context():
        db.session.execute(sa.update(Product).values(name="Imported lamp", version=Product.version + 1))
        catalog_changed()
        db.session.commit()
    assert reader(item)[1]["data"]["name"] == "Imported lamp"

    with app.app_context():
        db.session.execute(sa.update(Product).values(description="Now with a picture", version=Product.version + 1))
        catalog_changed(product_ids=[uuid.UUID(product_id)])
        db.session.commit()
    assert reader(PRODUCTS)[1]["data"][0]["description"] == "Now with a picture"

    with app.app_context():
        db.session.execute(
            sa.update(Product).values(stock=Product.stock + 5, version=Product.version + 1, updated_at=utcnow())
        )
        catalog_changed([uuid.UUID(product_id)], stock_only=True)
        db.session.commit()
    assert reader(item)[1]["data"]["stock"] == 7
    assert reader(PRODUCTS)[1]["data"][0]["stock"] == 7


def test_a_rolled_back_write_changes_nothing(app: Flask) -> None:
    make_product(app)
    with app.app_context():
        before = redis_queues.catalog_cache.get(cache.GENERATION_KEY)
        db.session.execute(sa.update(Product).values(name="never"))
        catalog_changed()
        db.session.rollback()
        assert redis_queues.catalog_cache.get(cache.GENERATION_KEY) == before


def test_a_write_while_redis_is_down_is_seen_by_every_process_once_redis_is_back(
    app: Flask,
    client: FlaskClient,
    staff: AuthedUser,
    customer: AuthedUser,
    reader: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change Redis did not take is sent again until it does: the other process sees the
    new price and the sold-out stock as soon as Redis is back (it served them from its
    cache for CATALOG_CACHE_TTL before), and the writing process reads the database until
    then (its cache would show the past again the moment Redis answers)."""
    monkeypatch.setattr(cache, "RETRY_SECONDS", 2.0)  # time to look before the retry
    product_id = make_product(app, name="Mug", price=Decimal("5.00"), stock=1)
    path = f"{PRODUCTS}/{product_id}"
    listed_in_stock = f"{PRODUCTS}?in_stock=true&per_page=100"
    _warm(reader, path)
    _warm(reader, listed_in_stock)
    assert client.get(path).status_code == 200 and client.get(path).status_code == 200
    with redis_at(app, unreachable_redis()):
        assert client.patch(path, json={"price": "6.00"}, headers=staff.headers).status_code == 200
        _order(client, customer, product_id, 1)  # the last one
    assert cache._unpublished.pending
    mine = json_of(client.get(path))["data"]
    assert (mine["price"], mine["stock"], mine["in_stock"]) == ("6.00", 0, False)
    deadline = time.monotonic() + 15
    while (body := reader(path)[1])["data"]["price"] != "6.00":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert (body["data"]["stock"], body["data"]["in_stock"]) == (0, False)
    assert product_id not in [p["id"] for p in reader(listed_in_stock)[1]["data"]]
    assert not cache._unpublished.pending


def test_a_catalog_cache_of_its_own_holds_every_entry_and_is_never_stale(
    app: Flask,
    client: FlaskClient,
    staff: AuthedUser,
    customer: AuthedUser,
    mailbox: Any,
    run_jobs: Callable[[], int],
    tmp_path: Any,
) -> None:
    """``CATALOG_CACHE_URL``: a second process configured with a Redis of its own for the
    cache keeps its entries there (none in the queues' Redis), sees every kind of write of
    a process that publishes there at once, and keeps serving (from the database) with its
    readiness intact when that Redis is gone; the writes' jobs still reach the queues."""
    product_id = make_product(app, name="Mug", price=Decimal("5.00"), stock=2)
    item, listed = f"{PRODUCTS}/{product_id}", f"{PRODUCTS}?in_stock=true&sort=name"
    with app.app_context():
        queues_redis = redis_queues.connection
        generation_there = queues_redis.get(cache.GENERATION_KEY)
    proc = None
    try:
        with private_redis() as cache_url:
            own_cache = redis.Redis.from_url(cache_url)
            env = {"APP_ENV": "testing", "WEB_CONCURRENCY": "1", "RATELIMIT_ENABLED": "false"}
            proc, base = start_gunicorn({**env, "TEST_CATALOG_CACHE_URL": cache_url}, tmp_path / "gunicorn.log")

            def read(path: str) -> Any:
                status, body = http("GET", base + path)
                assert status == 200, body
                return json.loads(body)

            for path in (item, listed):
                assert read(path) == read(path)
            assert sum(1 for _ in own_cache.scan_iter(match=cache.ENTRY_PREFIX + "*")) >= 2
            ready = read("/health/ready")
            assert ready["checks"]["catalog_cache"]["status"] == "ok" and ready["checks"]["redis"]["status"] == "ok"

            with catalog_cache_at(app, own_cache):
                patched = client.patch(item, json={"price": "6.00"}, headers=staff.headers)
                assert patched.status_code == 200, patched.get_data(as_text=True)
                assert read(item)["data"]["price"] == "6.00"
                _order(client, customer, product_id, 2)  # the last two: its mail job goes to the queues
                assert (read(item)["data"]["stock"], read(item)["data"]["in_stock"]) == (0, False)
                assert product_id not in [p["id"] for p in read(listed)["data"]]
            with app.app_context():
                assert queues_redis.get(cache.GENERATION_KEY) == generation_there  # nothing published there
            assert not own_cache.keys("rq:*"), "jobs go to the queues' Redis only"

            def mailed() -> bool:
                run_jobs()  # (the suite's own worker may take it first)
                return any(customer.email in str(message["To"]) for message in mailbox.messages)

            wait_until(mailed, timeout=20, what="the order's mail, through the queues' Redis")
            own_cache.close()
        # The cache's Redis is gone: the instance stays ready, and serves from the database.
        ready_status, ready_body = http("GET", base + "/health/ready")
        assert ready_status == 200, ready_body
        assert json.loads(ready_body)["checks"]["catalog_cache"]["status"] == "fail"
        status, body = http("GET", base + item)
        assert status == 200 and json.loads(body)["data"]["price"] == "6.00"
    finally:
        if proc is not None:
            stop(proc)


class _StalledRedis:
    """A server that takes connections and never answers (a Redis that hangs)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(65536):
                pass

    def client(self) -> Any:
        port = self.server.getsockname()[1]
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.2, socket_connect_timeout=0.2)


def test_a_stalled_redis_holds_a_list_read_up_once_not_once_per_lookup(app: Flask, client: FlaskClient) -> None:
    """A list read whose cache lookup timed out does not ask Redis again for its count (each
    wait is the full socket timeout: 5 s in production)."""
    product_id = make_product(app, name="Mug")
    stalled = _StalledRedis()
    try:
        with redis_at(app, stalled.client()):
            assert client.get(f"{PRODUCTS}/{product_id}").status_code == 200  # one lookup
            per_lookup = stalled.connections
            assert per_lookup >= 1
            assert client.get(f"{PRODUCTS}?per_page=3").status_code == 200
            assert stalled.connections == 2 * per_lookup
    finally:
        stalled.server.close()


def test_category_answers_vary_on_authorization_as_every_catalog_read(app: Flask, client: FlaskClient) -> None:
    make_category(app, "mugs", "Mugs")
    for path in (CATEGORIES, f"{CATEGORIES}/mugs"):
        response = client.get(path)
        assert response.headers["Vary"] == "Authorization"
        assert response.headers["Cache-Control"] == "public, max-age=0, must-revalidate"


def test_a_sale_is_in_the_next_read_of_a_cached_sync_list(
    app: Flask, client: FlaskClient, customer: AuthedUser, staff: AuthedUser
) -> None:
    """A sale moves the product's ``updated_at`` without renewing the catalog's generation:
    the staff-only ``updated_after`` and ``sort=updated_at`` lists (like every staff read,
    built from the database, never cached) have the product, at its new place, at once."""
    sold, other = make_product(app, name="Sold", stock=3), make_product(app, name="Other", stock=3)
    since = json_of(client.get(f"{PRODUCTS}/{other}", headers=staff.headers))["data"]["updated_at"]
    paths = (f"{PRODUCTS}?updated_after={since}&sort=updated_at", f"{PRODUCTS}?sort=-updated_at&limit=1")
    for path in paths:
        for _ in range(2):  # the second read comes from the cache
            assert client.get(path, headers=staff.headers).status_code == 200
    _order(client, customer, sold, 1)
    for path in paths:
        body = json_of(client.get(path, headers=staff.headers))
        assert body["data"][-1 if "updated_after" in path else 0]["id"] == sold, path
