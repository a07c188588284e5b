"""Placing orders: catalog prices, validation, stock, totals, idempotency."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db, utcnow
from app.orders.models import IdempotencyKey, Order, OrderItem
from app.products.models import Product
from tests.conftest import json_of
from tests.factories import create_user
from tests.orders.conftest import ADDRESS, created, make_product, stock_of
from tests.support.mailbox import Mailbox
from tests.support.sql import recorded_statements


def order_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(Order)) or 0)


def test_order_uses_catalog_prices_and_takes_stock(
    app: Flask, place: Callable[..., Any], mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    customer = create_user(app)
    a, b = make_product(app, price="19.99", stock=5), make_product(app, price="5.00", stock=3)
    response = place(customer, [(a, 2), (b, 1)], notes="Leave at the door")
    order = created(response)
    assert response.headers["Location"] == f"/api/v1/orders/{order['id']}"
    assert re.fullmatch(r"ORD-\d{4}-\d{6,}", order["number"])
    assert order["status"] == "pending"
    assert order["user_id"] == customer.id
    assert [(i["product_id"], i["unit_price"], i["quantity"], i["line_total"]) for i in order["items"]] == [
        (a, "19.99", 2, "39.98"),
        (b, "5.00", 1, "5.00"),
    ]
    assert (order["subtotal"], order["tax"], order["shipping"], order["total"]) == ("44.98", "0.00", "0.00", "44.98")
    assert order["currency"] == "USD"
    assert order["shipping_address"] == {**ADDRESS, "line2": None}
    assert order["notes"] == "Leave at the door"
    assert stock_of(app, a) == 3 and stock_of(app, b) == 2
    run_jobs()
    [mail] = mailbox.to(customer.email)
    assert order["number"] in mail["Subject"]
    assert "44.98 USD" in Mailbox.text_of(mail)


def test_the_client_cannot_send_a_price(app: Flask, client: FlaskClient) -> None:
    customer = create_user(app)
    product = make_product(app)
    body = {"items": [{"product_id": product, "quantity": 1, "unit_price": "0.01"}], "shipping_address": ADDRESS}
    response = client.post("/api/v1/orders", json=body, headers=customer.headers)
    assert response.status_code == 422
    assert json_of(response)["error"]["details"] == [{"field": "items.0.unit_price", "message": "Unknown field."}]


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "items"),
        ([("P", 0)], "items.0.quantity"),
        ([("P", 101)], "items.0.quantity"),
        ([("P", 1), ("P", 2)], "items.1.product_id"),
        ([("not-a-uuid", 1)], "items.0.product_id"),
    ],
)
def test_line_validation(app: Flask, place: Callable[..., Any], lines: list[tuple[str, int]], field: str) -> None:
    customer = create_user(app)
    product = make_product(app)
    response = place(customer, [(product if p == "P" else p, q) for p, q in lines])
    assert response.status_code == 422
    assert field in [d["field"] for d in json_of(response)["error"]["details"]]
    assert stock_of(app, product) == 10


def test_at_most_fifty_lines(app: Flask, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    response = place(customer, [(str(uuid.uuid4()), 1) for _ in range(51)])
    assert response.status_code == 422
    assert json_of(response)["error"]["details"][0]["field"] == "items"


def test_address_validation(app: Flask, client: FlaskClient) -> None:
    customer = create_user(app)
    product = make_product(app)
    for address, field in (
        ({**ADDRESS, "country": "XX"}, "shipping_address.country"),
        ({**ADDRESS, "country": "usa"}, "shipping_address.country"),
        ({**ADDRESS, "country": "us"}, "shipping_address.country"),  # ISO codes are upper case
        ({k: v for k, v in ADDRESS.items() if k != "city"}, "shipping_address.city"),
        ({**ADDRESS, "zip": "1"}, "shipping_address.zip"),
    ):
        body = {"items": [{"product_id": product, "quantity": 1}], "shipping_address": address}
        response = client.post("/api/v1/orders", json=body, headers=customer.headers)
        assert response.status_code == 422, address
        assert [d["field"] for d in json_of(response)["error"]["details"]] == [field]


def test_address_is_trimmed(app: Flask, client: FlaskClient) -> None:
    customer = create_user(app)
    product = make_product(app)
    address = {**ADDRESS, "name": "  Ann Lee ", "country": "DE"}
    body = {"items": [{"product_id": product, "quantity": 1}], "shipping_address": address}
    order = created(client.post("/api/v1/orders", json=body, headers=customer.headers))
    assert order["shipping_address"]["name"] == "Ann Lee"
    assert order["shipping_address"]["country"] == "DE"
    for blank in ("name", "line1", "city", "postal_code"):
        body = {"items": [{"product_id": product, "quantity": 1}], "shipping_address": {**ADDRESS, blank: "   "}}
        response = client.post("/api/v1/orders", json=body, headers=customer.headers)
        assert response.status_code == 422, blank
        assert [d["field"] for d in json_of(response)["error"]["details"]] == [f"shipping_address.{blank}"]


def test_a_product_withdrawn_while_the_order_is_placed_is_not_sold(app: Flask, place: Callable[..., Any]) -> None:
    """Staff deactivate a product while an order for it is being placed (committed by
    another connection just before the stock is taken): the stock UPDATE itself refuses
    it (422 naming the line) and nothing is sold, not even the other line."""
    customer = create_user(app)
    kept, withdrawn = make_product(app, stock=5), make_product(app, stock=5)
    done: list[bool] = []

    def withdraw_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The placement's first statement on the products: their lock (PostgreSQL, several
        # lines) or the first stock UPDATE.
        first = statement.startswith("UPDATE products") or statement.rstrip().endswith("FOR NO KEY UPDATE")
        if first and not done:
            done.append(True)
            with db.engine.connect() as other:  # another request, committed in between
                other.execute(sa.update(Product).where(Product.id == uuid.UUID(withdrawn)).values(is_active=False))
                other.commit()

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", withdraw_first)
    try:
        response = place(customer, [(kept, 1), (withdrawn, 1)])
    finally:
        sa.event.remove(engine, "before_cursor_execute", withdraw_first)
    assert done
    assert response.status_code == 422, response.get_data(as_text=True)
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["items.1.product_id"]
    assert stock_of(app, kept) == stock_of(app, withdrawn) == 5
    assert order_count(app) == 0


def test_unavailable_products_are_named_per_line(app: Flask, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    good = make_product(app)
    inactive, deleted = make_product(app, is_active=False), make_product(app, deleted=True)
    response = place(customer, [(good, 1), (inactive, 1), (str(uuid.uuid4()), 1), (deleted, 1)])
    assert response.status_code == 422
    fields = [d["field"] for d in json_of(response)["error"]["details"]]
    assert fields == ["items.1.product_id", "items.2.product_id", "items.3.product_id"]
    assert stock_of(app, good) == 10
    assert order_count(app) == 0


def test_insufficient_stock_lists_each_short_line_and_writes_nothing(app: Flask, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    plenty, short_a, short_b = make_product(app, stock=50), make_product(app, stock=2), make_product(app, stock=0)
    response = place(customer, [(plenty, 5), (short_a, 3), (short_b, 1)])
    assert response.status_code == 409
    error = json_of(response)["error"]
    assert error["code"] == "INSUFFICIENT_STOCK"
    assert error["details"] == [
        {
            "field": "items.1.quantity",
            "message": "Requested 3, only 2 available.",
            "context": {"product_id": short_a, "requested": 3, "available": 2},
        },
        {
            "field": "items.2.quantity",
            "message": "Requested 1, only 0 available.",
            "context": {"product_id": short_b, "requested": 1, "available": 0},
        },
    ]
    assert (stock_of(app, plenty), stock_of(app, short_a), stock_of(app, short_b)) == (50, 2, 0)
    assert order_count(app) == 0


def test_an_order_whose_total_an_amount_cannot_hold_is_refused_and_writes_nothing(
    app: Flask, place: Callable[..., Any], pricing: Callable[..., None]
) -> None:
    # Amounts have at most ten digits before the point (NUMERIC(12, 2)): a dearest product
    # times a hundred, or a total pushed over by tax, is a 422, not a database error.
    customer = create_user(app)
    pricing(tax="0.10")
    dearest, tenth = make_product(app, price="9999999999.99", stock=200), make_product(app, price="0.10")
    for lines in ([(dearest, 100)], [(dearest, 1)], [(tenth, 1), (dearest, 1)]):
        response = place(customer, lines)
        assert response.status_code == 422, response.get_data(as_text=True)
        assert json_of(response)["error"]["details"] == [
            {"field": "items", "message": "The order would come to more than 9999999999.99."}
        ]
    assert (stock_of(app, dearest), stock_of(app, tenth)) == (200, 10)
    assert order_count(app) == 0
    pricing(tax="0")
    order = created(place(customer, [(dearest, 1)]))  # exactly the largest amount
    assert order["total"] == order["subtotal"] == "9999999999.99"


@pytest.fixture
def pricing(app: Flask) -> Iterator[Callable[..., None]]:
    saved = {k: app.config[k] for k in ("TAX_RATE", "SHIPPING_FLAT", "FREE_SHIPPING_OVER")}

    def configure(tax: str = "0", shipping: str = "0.00", free_over: str | None = None) -> None:
        app.config.update(
            TAX_RATE=Decimal(tax),
            SHIPPING_FLAT=Decimal(shipping),
            FREE_SHIPPING_OVER=Decimal(free_over) if free_over else None,
        )

    yield configure
    app.config.update(saved)


def test_totals_on_awkward_decimals(
    app: Flask, place: Callable[..., Any], pricing: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "ORDER_MAX_PENDING", 10)  # one customer, several unpaid orders
    customer = create_user(app)
    pricing(tax="0.0825", shipping="4.99", free_over="100.00")
    # 0.10 + 0.20 is exactly 0.30 here (no binary floats anywhere).
    tenth, fifth = make_product(app, price="0.10"), make_product(app, price="0.20")
    order = created(place(customer, [(tenth, 1), (fifth, 1)]))
    # tax 0.30 * 0.0825 = 0.02475 → 0.02 (half-up at the cent)
    assert (order["subtotal"], order["tax"], order["shipping"], order["total"]) == ("0.30", "0.02", "4.99", "5.31")

    # Many lines: 33 x 3 x 1.01 = 99.99 → tax 8.249175 → 8.25; shipping still due below 100.00.
    many = [(make_product(app, price="1.01", stock=5), 3) for _ in range(33)]
    order = created(place(customer, many))
    assert (order["subtotal"], order["tax"], order["shipping"], order["total"]) == ("99.99", "8.25", "4.99", "113.23")

    # Half-up, not banker's rounding: 12.50 * 0.05 = 0.625 → 0.63.
    pricing(tax="0.05")
    order = created(place(customer, [(make_product(app, price="12.50"), 1)]))
    assert order["tax"] == "0.63"

    pricing(tax="0", shipping="4.99", free_over="100.00")
    order = created(place(customer, [(make_product(app, price="100.00"), 1)]))
    assert order["shipping"] == "0.00"


def test_same_key_same_body_replays_the_first_response(
    app: Flask, place: Callable[..., Any], mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    customer = create_user(app)
    product = make_product(app, stock=10)
    first = place(customer, [(product, 2)], key="key-1")
    order = created(first)
    second = place(customer, [(product, 2)], key="key-1")
    assert second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert json_of(second) == json_of(first)
    assert second.headers["Location"] == first.headers["Location"]
    assert stock_of(app, product) == 8
    assert order_count(app) == 1
    run_jobs()
    assert len(mailbox.to(customer.email)) == 1
    # Replays show the response as it was, even after the order moved on.
    with app.app_context():
        db.session.execute(sa.update(Order).values(status="paid"))
        db.session.commit()
    assert json_of(place(customer, [(product, 2)], key="key-1"))["data"]["status"] == order["status"]


def test_same_key_different_body_is_422(app: Flask, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    product = make_product(app)
    created(place(customer, [(product, 1)], key="key-2"))
    response = place(customer, [(product, 2)], key="key-2")
    assert response.status_code == 422
    assert json_of(response)["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert order_count(app) == 1


def test_keys_are_per_user_and_expire(app: Flask, place: Callable[..., Any]) -> None:
    alice, bob = create_user(app), create_user(app)
    product = make_product(app)
    created(place(alice, [(product, 1)], key="shared"))
    bob_response = place(bob, [(product, 1)], key="shared")
    assert "Idempotent-Replayed" not in created(bob_response) and "Idempotent-Replayed" not in bob_response.headers
    with app.app_context():
        db.session.execute(sa.update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    again = place(alice, [(product, 1)], key="shared")
    assert "Idempotent-Replayed" not in again.headers
    assert order_count(app) == 3


def test_failed_requests_are_not_stored(app: Flask, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    product = make_product(app, stock=1)
    assert place(customer, [(product, 2)], key="retry-me").status_code == 409
    with app.app_context():
        db.session.execute(sa.text("UPDATE products SET stock = 5"))
        db.session.commit()
    assert place(customer, [(product, 2)], key="retry-me").status_code == 201


def test_a_refused_order_releases_its_key(app: Flask, place: Callable[..., Any]) -> None:
    """A 422 (like a 409) stores nothing: the client fixes the cause and retries with the
    same key, as the IETF draft expects for a request that did not take effect."""
    customer = create_user(app)
    product = make_product(app, is_active=False)
    assert place(customer, [(product, 1)], key="fix-and-retry").status_code == 422
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0
        db.session.execute(sa.update(Product).values(is_active=True))
        db.session.commit()
    first = place(customer, [(product, 1)], key="fix-and-retry")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    replay = place(customer, [(product, 1)], key="fix-and-retry")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json() == first.get_json()


def test_bad_idempotency_key_is_422(app: Flask, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    product = make_product(app)
    response = place(customer, [(product, 1)], key="x" * 300)
    assert response.status_code == 422
    assert json_of(response)["error"]["details"][0]["field"] == "Idempotency-Key"


def test_an_idempotency_key_sent_twice_is_refused_not_merged(app: Flask, client: FlaskClient) -> None:
    """Two ``Idempotency-Key`` headers arrive joined ("a, b"): that is no key of either."""
    customer = create_user(app)
    product = make_product(app, stock=10)
    body = {"items": [{"product_id": product, "quantity": 1}], "shipping_address": ADDRESS}
    for headers in (
        [*customer.headers.items(), ("Idempotency-Key", "first"), ("Idempotency-Key", "second")],
        [*customer.headers.items(), ("Idempotency-Key", '"first", "second"')],
    ):
        response = client.post("/api/v1/orders", json=body, headers=headers)
        assert response.status_code == 422, response.get_data(as_text=True)
        assert json_of(response)["error"]["details"][0]["field"] == "Idempotency-Key"
    quoted = client.post("/api/v1/orders", json=body, headers={**customer.headers, "Idempotency-Key": '"a,b"'})
    assert quoted.status_code == 201
    replay = client.post("/api/v1/orders", json=body, headers={**customer.headers, "Idempotency-Key": '"a,b"'})
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_the_documented_key_pattern_takes_exactly_the_keys_the_server_takes(
    app: Flask, client: FlaskClient, place: Callable[..., Any]
) -> None:
    """A client validating its key against the document sent "a, b" and got a 422."""
    parameters = json_of(client.get("/api/v1/openapi.json"))["paths"]["/api/v1/orders"]["post"]["parameters"]
    pattern = next(p for p in parameters if p["name"] == "Idempotency-Key")["schema"]["pattern"]
    customers = [create_user(app) for _ in range(2)]  # RATELIMIT_ORDERS: 10 a minute each
    product = make_product(app, stock=100)
    keys = (
        "k1",
        '"k1"',
        "a b",
        '" a "',
        '"a,b"',
        "a,b",
        "a, b",
        '""',
        '"',
        'a"b',
        '"a"b"',
        '"a',
        "~!#$%&'*+-.^_`|",
    )
    for n, key in enumerate(keys):
        answer = place(customers[n % 2], [(product, 1)], key=key)  # past ORDER_MAX_PENDING: a 409, key taken
        assert answer.status_code in (201, 409, 422)
        assert (answer.status_code != 422) == (re.fullmatch(pattern, key) is not None), key


def test_staff_and_anonymous(app: Flask, place: Callable[..., Any], client: FlaskClient) -> None:
    product = make_product(app)
    assert client.post("/api/v1/orders", json={}).status_code == 401
    staff = create_user(app, role="staff")
    created(place(staff, [(product, 1)]))


def test_expired_keys_are_purged(app: Flask, place: Callable[..., Any]) -> None:
    customer = create_user(app)
    product = make_product(app)
    created(place(customer, [(product, 1)], key="old"))
    created(place(customer, [(product, 1)], key="new"))
    with app.app_context():
        db.session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.key == "old")
            .values(expires_at=utcnow() - timedelta(hours=1))
        )
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["orders", "purge-idempotency-keys"])
    assert "Purged 1 expired" in result.output
    with app.app_context():
        assert db.session.scalars(sa.select(IdempotencyKey.key)).all() == ["new"]


def test_the_answer_is_the_order_as_stored(app: Flask, place: Callable[..., Any], client: FlaskClient) -> None:
    """Placement answers with the order it built, not one read back: every field of the
    answer (defaults included) must be what a later read of the stored order shows."""
    customer = create_user(app)
    a, b = make_product(app, price="3.50", stock=4), make_product(app, price="1.25", stock=4)
    placed = created(place(customer, [(b, 3), (a, 1)], notes="Ring twice"))
    stored = client.get(f"/api/v1/orders/{placed['id']}", headers=customer.headers)
    assert stored.status_code == 200
    assert json_of(stored)["data"] == placed
    history = json_of(client.get(f"/api/v1/orders/{placed['id']}/events", headers=customer.headers))["data"]
    assert [(e["from_status"], e["to_status"], e["actor_id"], e["at"]) for e in history] == [
        (None, "pending", customer.id, placed["created_at"])
    ]


def test_a_placement_writes_each_row_once_and_on_postgresql_in_one_statement(
    app: Flask, place: Callable[..., Any]
) -> None:
    """Nothing is written twice. On PostgreSQL the order, its lines, its event and its
    confirmation mail are one statement (one round trip, whatever the number of lines);
    SQLite, which has no INSERT inside a WITH, writes one statement per table."""
    customer = create_user(app)
    products = [make_product(app) for _ in range(3)]
    created(place(create_user(app), [(products[0], 1)]))  # SQLite's order-number counter row exists now
    with recorded_statements(app, "INSERT", "WITH") as writes:
        order = created(place(customer, [(p, 1) for p in products]))
    tables = [re.findall(r"INSERT INTO (\w+)", statement) for statement in writes]
    with app.app_context():
        postgresql = db.engine.dialect.name == "postgresql"
    if postgresql:
        assert tables == [["orders", "order_items", "order_items", "order_items", "order_events", "mail_outbox"]]
    else:
        assert tables == [["orders"], ["order_items"], ["order_events"], ["mail_outbox"]]
    with app.app_context():
        stored = db.session.execute(
            sa.select(OrderItem.product_id)
            .where(OrderItem.order_id == uuid.UUID(order["id"]))
            .order_by(OrderItem.position)
        ).scalars()
        assert [str(product_id) for product_id in stored] == [line["product_id"] for line in order["items"]]


def test_the_statements_of_a_placement_do_not_grow_with_its_lines_on_postgresql(
    app: Flask, place: Callable[..., Any]
) -> None:
    """PostgreSQL: the products locked in one statement and their stock taken in one more,
    for two lines as for six. SQLite, which serialises writers, takes one line at a time."""
    customer = create_user(app)
    products = [make_product(app, stock=10) for _ in range(6)]
    created(place(create_user(app), [(products[0], 1)]))  # SQLite's order-number counter row exists now
    sent = []
    for count in (2, 6):
        with recorded_statements(app, "SELECT", "UPDATE", "INSERT", "WITH") as statements:
            created(place(customer, [(product, 1) for product in products[:count]]))
        sent.append(len(statements))
    with app.app_context():
        postgresql = db.engine.dialect.name == "postgresql"
    assert sent[1] - sent[0] == (0 if postgresql else 4)
    assert [stock_of(app, product) for product in products] == [7, 8, 9, 9, 9, 9]


@pytest.mark.services
def test_a_placement_sends_its_job_and_its_catalog_change_to_redis_in_one_round_trip(
    app: Flask, place: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the commit, the confirmation mail's job and the new stock of the catalog's
    cache go to Redis together: one pipeline, sent once."""
    from redis.client import Pipeline

    customer = create_user(app)
    product = make_product(app, stock=5)
    sent: list[list[str]] = []
    execute = Pipeline.execute

    def recording(self: Pipeline, raise_on_error: bool = True) -> Any:
        sent.append([str(args[0]).upper() for args, _ in self.command_stack])
        return execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", recording)
    created(place(customer, [(product, 2)]))
    monkeypatch.undo()
    [commands] = [names for names in sent if "EVALSHA" in names or "RPUSH" in names]
    assert {"EVALSHA", "HSET", "RPUSH"} <= set(commands)  # the stock stored, the job saved and queued


def test_a_failure_after_the_rows_are_written_leaves_none_of_them(
    app: Flask,
    place: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    mailbox: Mailbox,
    run_jobs: Callable[[], int],
) -> None:
    """The order, its lines and its event are written before the confirmation mail: when
    the mail cannot be written the whole placement goes, stock included."""
    from app.errors import ServiceUnavailable
    from app.mail import service as mail_service

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ServiceUnavailable("the outbox is unavailable")

    customer = create_user(app)
    product = make_product(app, stock=5)
    monkeypatch.setattr(mail_service, "insert_new", refuse)
    response = place(customer, [(product, 2)], key="key-fail")
    assert response.status_code == 503
    assert json_of(response)["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert order_count(app) == 0 and stock_of(app, product) == 5
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0
    run_jobs()
    assert mailbox.to(customer.email) == []

    monkeypatch.undo()
    order = created(place(customer, [(product, 2)], key="key-fail"))
    assert stock_of(app, product) == 3 and order_count(app) == 1
    run_jobs()
    assert [order["number"] in m["Subject"] for m in mailbox.to(customer.email)] == [True]
