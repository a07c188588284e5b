"""GET /products: both pagination styles, filters, sorting, sparse fields, statement counts."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import ORMExecuteState, Session

from app.db import db
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.products.builders import (
    PRODUCTS,
    forget_cached_catalog,
    make_category,
    make_product,
    make_products,
    product_body,
)
from tests.support.sql import count_selects


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [p["name"] for p in json_of(response)["data"]]


def parse_links(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', header)}


def test_page_walk_over_250_returns_each_exactly_once(app: Flask, client: FlaskClient) -> None:
    ids = set(make_products(app, 250))
    seen: list[str] = []
    url = f"{PRODUCTS}?per_page=40&sort=price"
    pages = 0
    while url:
        response = client.get(url)
        body = json_of(response)
        assert body["meta"]["total"] == 250 and body["meta"]["total_pages"] == 7
        seen.extend(p["id"] for p in body["data"])
        prices = [Decimal(p["price"]) for p in body["data"]]
        assert prices == sorted(prices)
        pages += 1
        url = parse_links(response.headers["Link"]).get("next", "")
    assert pages == 7
    assert len(seen) == 250 and set(seen) == ids


@pytest.mark.parametrize("sort", [None, "name", "-price", "created_at"])
def test_cursor_walk_over_250_is_stable_under_inserts(app: Flask, client: FlaskClient, sort: str | None) -> None:
    ids = set(make_products(app, 250))
    suffix = f"&sort={sort}" if sort else ""
    seen: list[str] = []
    url = f"{PRODUCTS}?limit=30{suffix}"
    inserted = 0
    while True:
        body = json_of(client.get(url))
        assert set(body["meta"]) == {"limit", "next_cursor", "has_more"}
        seen.extend(p["id"] for p in body["data"])
        # New products arrive between pages (some sort before the cursor, some after).
        make_products(app, 2, start=1000 + inserted)
        inserted += 2
        if not body["meta"]["has_more"]:
            assert body["meta"]["next_cursor"] is None
            break
        url = f"{PRODUCTS}?limit=30{suffix}&cursor={body['meta']['next_cursor']}"
    assert len(seen) == len(set(seen)), "no product twice"
    assert ids <= set(seen), "every original product once"


def test_default_order_is_newest_first(app: Flask, client: FlaskClient) -> None:
    make_product(app, name="Old")
    make_product(app, name="New")
    assert names(client.get(PRODUCTS)) == ["New", "Old"]
    assert names(client.get(f"{PRODUCTS}?limit=5")) == ["New", "Old"]


def test_sort_by_price_then_name(app: Flask, client: FlaskClient) -> None:
    for name, price in (("b", "5.00"), ("a", "5.00"), ("c", "1.00"), ("d", "9.00")):
        make_product(app, name=name, price=Decimal(price))
    assert names(client.get(f"{PRODUCTS}?sort=-price,name")) == ["d", "a", "b", "c"]
    assert names(client.get(f"{PRODUCTS}?sort=price,-name&limit=2")) == ["c", "b"]
    assert names(client.get(f"{PRODUCTS}?sort=name")) == ["a", "b", "c", "d"]


def test_q_searches_name_sku_and_description_case_insensitively(app: Flask, client: FlaskClient) -> None:
    make_product(app, name="Blue Kettle", sku="KT-1", description="Boils water")
    make_product(app, name="Red Mug", sku="MUG-BLUE", description="Holds tea")
    make_product(app, name="Lamp", sku="LP-1", description="Sky BLUE shade")
    make_product(app, name="Chair", sku="CH-1", description="Sits")
    assert sorted(names(client.get(f"{PRODUCTS}?q=blue"))) == ["Blue Kettle", "Lamp", "Red Mug"]
    assert names(client.get(f"{PRODUCTS}?q=mug-b")) == ["Red Mug"]
    assert names(client.get(f"{PRODUCTS}?q=boils")) == ["Blue Kettle"]
    assert names(client.get(f"{PRODUCTS}?q=nothing")) == []


def test_q_treats_like_wildcards_literally(app: Flask, client: FlaskClient) -> None:
    make_product(app, name="100% Cotton")
    make_product(app, name="1000 Cottons")
    make_product(app, name="snake_case")
    make_product(app, name="snakeXcase")
    assert names(client.get(f"{PRODUCTS}?q=100%25")) == ["100% Cotton"]
    assert names(client.get(f"{PRODUCTS}?q=e_c")) == ["snake_case"]


def test_filter_by_category_slug(app: Flask, client: FlaskClient) -> None:
    mugs, sale = make_category(app, "mugs"), make_category(app, "sale")
    make_product(app, name="Mug", category_ids=[mugs])
    make_product(app, name="Mug on sale", category_ids=[mugs, sale])
    make_product(app, name="Lamp")
    assert sorted(names(client.get(f"{PRODUCTS}?category=mugs"))) == ["Mug", "Mug on sale"]
    assert names(client.get(f"{PRODUCTS}?category=sale")) == ["Mug on sale"]
    assert names(client.get(f"{PRODUCTS}?category=unknown")) == []
    assert json_of(client.get(f"{PRODUCTS}?category=mugs"))["meta"]["total"] == 2  # no duplicate rows


def test_price_range_is_inclusive_and_in_stock_filters(app: Flask, client: FlaskClient) -> None:
    for name, price, stock in (("a", "4.99", 1), ("b", "5.00", 0), ("c", "10.00", 3), ("d", "10.01", 2)):
        make_product(app, name=name, price=Decimal(price), stock=stock)
    assert names(client.get(f"{PRODUCTS}?min_price=5&max_price=10.00&sort=name")) == ["b", "c"]
    assert names(client.get(f"{PRODUCTS}?min_price=10&sort=name")) == ["c", "d"]
    assert names(client.get(f"{PRODUCTS}?max_price=5&sort=name")) == ["a", "b"]
    assert names(client.get(f"{PRODUCTS}?in_stock=true&sort=name")) == ["a", "c", "d"]
    assert names(client.get(f"{PRODUCTS}?in_stock=false")) == ["b"]


def test_filters_combine_with_sort_and_both_styles(app: Flask, client: FlaskClient) -> None:
    tea = make_category(app, "tea")
    for i in range(12):
        make_product(
            app,
            name=f"Green tea {i:02d}",
            price=Decimal(i),
            stock=i % 2,
            category_ids=[tea] if i % 3 else [],
        )
    make_product(app, name="Green lamp", price=Decimal(5), stock=1, category_ids=[tea])
    query = "q=tea&category=tea&min_price=2&max_price=10&in_stock=true&sort=-price"
    expected = ["Green tea 07", "Green tea 05"]  # odd (in stock), not a multiple of 3, 2…10
    assert names(client.get(f"{PRODUCTS}?{query}")) == expected
    assert names(client.get(f"{PRODUCTS}?{query}&limit=1")) == expected[:1]


def test_is_active_filter_for_staff(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    make_product(app, name="On", is_active=True)
    make_product(app, name="Off", is_active=False)
    assert sorted(names(client.get(PRODUCTS, headers=staff.headers))) == ["Off", "On"]
    assert names(client.get(f"{PRODUCTS}?is_active=false", headers=staff.headers)) == ["Off"]
    assert names(client.get(f"{PRODUCTS}?is_active=true", headers=staff.headers)) == ["On"]
    assert names(client.get(PRODUCTS)) == ["On"]


def test_deleted_products_are_in_no_list(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    keep, gone = make_product(app, name="Keep"), make_product(app, name="Gone")
    assert client.delete(f"{PRODUCTS}/{gone}", headers=staff.headers).status_code == 204
    for headers in ({}, staff.headers):
        assert names(client.get(PRODUCTS, headers=headers)) == ["Keep"]
        assert names(client.get(f"{PRODUCTS}?limit=10", headers=headers)) == ["Keep"]
    assert json_of(client.get(f"{PRODUCTS}?is_active=true", headers=staff.headers))["data"][0]["id"] == keep


def test_sparse_fields(app: Flask, client: FlaskClient) -> None:
    make_products(app, 3)
    for query in ("fields=id,name,price", "fields=id,name,price&limit=2"):
        body = json_of(client.get(f"{PRODUCTS}?{query}"))
        assert body["data"] and all(list(p) == ["id", "name", "price"] for p in body["data"])
        assert isinstance(body["data"][0]["price"], str)
    categories_only = json_of(client.get(f"{PRODUCTS}?fields=categories"))["data"]
    assert categories_only[0] == {"categories": []}
    # The restriction is per request: the next list and a single product are whole.
    assert "sku" in json_of(client.get(PRODUCTS))["data"][0]
    single = json_of(client.get(f"{PRODUCTS}/{body['data'][0]['id']}"))["data"]
    assert "sku" in single and "version" in single


@pytest.mark.parametrize("authenticated", [False, True])
def test_a_page_past_the_end_still_has_the_total(
    app: Flask, client: FlaskClient, staff: AuthedUser, authenticated: bool
) -> None:
    """The total is counted by the page's own statement; a page with no rows counts apart."""
    make_products(app, 7)
    headers = staff.headers if authenticated else {}
    for page, size, rows in ((5, 5, 0), (2, 5, 2), (1, 10, 7)):
        forget_cached_catalog(app)
        body = json_of(client.get(f"{PRODUCTS}?page={page}&per_page={size}&min_price=0", headers=headers))
        assert len(body["data"]) == rows
        assert body["meta"] == {"page": page, "per_page": size, "total": 7, "total_pages": -(-7 // size)}
        assert all(set(p) >= {"id", "categories"} and "_total" not in p for p in body["data"])


@pytest.mark.parametrize("authenticated", [False, True])
def test_statement_count_does_not_grow_with_page_size(
    app: Flask, client: FlaskClient, staff: AuthedUser, authenticated: bool
) -> None:
    categories = [make_category(app, "one"), make_category(app, "two")]
    make_products(app, 60, category_ids=categories)
    headers = staff.headers if authenticated else {}
    counts = {}
    for size in (5, 50):
        forget_cached_catalog(app)  # as just after a write (in the services run, where Redis caches pages)
        with count_selects(app) as page_statements:
            response = client.get(f"{PRODUCTS}?per_page={size}", headers=headers)
        assert len(json_of(response)["data"]) == size
        assert all(len(p["categories"]) == 2 for p in json_of(response)["data"])
        with count_selects(app) as cursor_statements:
            response = client.get(f"{PRODUCTS}?limit={size}&sort=price", headers=headers)
        assert len(json_of(response)["data"]) == size
        counts[size] = (len(page_statements), len(cursor_statements))
    assert counts[5] == counts[50]
    if not authenticated:
        assert counts[5] == (2, 2)  # page: the rows with their count, categories; cursor: rows, categories


def test_an_uncached_read_runs_outside_a_transaction_and_leaves_none_behind(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    """A catalog read sends its statements as they are (no BEGIN and ROLLBACK round trips
    around them); the pooled connection is transactional again for the next request's
    writes, which a failure still rolls back."""
    make_products(app, 3)
    with app.app_context():
        engine = db.engine
    levels: list[object] = []

    def record(conn: Any, *args: Any) -> None:
        levels.append(conn.get_execution_options().get("isolation_level"))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        forget_cached_catalog(app)
        assert client.get(f"{PRODUCTS}?per_page=2").status_code == 200
        read = list(levels)
        levels.clear()
        response = client.post(PRODUCTS, json=product_body(sku="TX-1", price="-1"), headers=staff.headers)
        assert response.status_code == 422
        assert client.post(PRODUCTS, json=product_body(sku="TX-2"), headers=staff.headers).status_code == 201
        written = list(levels)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert read and set(read) == {"AUTOCOMMIT"}
    assert written and "AUTOCOMMIT" not in written
    with app.app_context():
        assert db.session.connection().get_isolation_level() != "AUTOCOMMIT"


def test_each_product_lists_its_categories_by_name_in_every_read(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    ids = [
        make_category(app, "c-zebra", "Zebra"),
        make_category(app, "a-mango", "mango"),
        make_category(app, "b-apple", "Apple"),
    ]
    product = make_product(app, category_ids=ids)
    make_product(app)  # none: an empty list, not null
    expected = ["b-apple", "c-zebra", "a-mango"] if _binary_collation(app) else ["b-apple", "a-mango", "c-zebra"]
    for path in (f"{PRODUCTS}?per_page=5", f"{PRODUCTS}?limit=5", f"{PRODUCTS}?q=Product"):
        for headers in ({}, staff.headers):
            data = json_of(client.get(path, headers=headers))["data"]
            by_id = {p["id"]: p for p in data}
            assert [c["slug"] for c in by_id[product]["categories"]] == expected, path
            assert by_id[product]["categories"][0] == {"id": ids[2], "slug": "b-apple", "name": "Apple"}
            assert [p["categories"] for p in data if p["id"] != product] == [[]]
    item = json_of(client.get(f"{PRODUCTS}/{product}"))["data"]
    assert [c["slug"] for c in item["categories"]] == expected


@pytest.mark.parametrize("sort", ["name", "-price", "-created_at", None])
def test_a_later_page_keeps_its_order_and_each_products_own_categories(
    app: Flask, client: FlaskClient, staff: AuthedUser, sort: str | None
) -> None:
    """A page past the first: the rows keep the list's order, each with its own categories."""
    slugs = [f"cat-{n}" for n in range(4)]
    ids = {slug: make_category(app, slug) for slug in slugs}
    expected: dict[str, list[str]] = {}
    for n in range(9):
        own = [slug for k, slug in enumerate(slugs) if (n >> k) & 1]
        product = make_product(
            app, name=f"Lamp {(n * 5) % 9}", price=Decimal(f"{(n * 7) % 9 + 1}.00"), category_ids=[ids[s] for s in own]
        )
        expected[product] = own
    query = "per_page=9" + (f"&sort={sort}" if sort else "") + "&q=lamp" * (sort is None)
    for headers in ({}, staff.headers):
        everything = [p["id"] for p in json_of(client.get(f"{PRODUCTS}?{query}", headers=headers))["data"]]
        assert sorted(everything) == sorted(expected)
        for page in (2, 3):
            query_page = query.replace("per_page=9", f"per_page=3&page={page}")
            data = json_of(client.get(f"{PRODUCTS}?{query_page}", headers=headers))["data"]
            assert [p["id"] for p in data] == everything[(page - 1) * 3 : page * 3], query_page
            assert all([c["slug"] for c in p["categories"]] == expected[p["id"]] for p in data), query_page


def _binary_collation(app: Flask) -> bool:
    """SQLite orders text by code point ("Zebra" before "mango"); PostgreSQL by the
    database's collation, which may not."""
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            return True
        return bool(db.session.scalar(sa.text("SELECT 'Zebra' < 'mango'")))


def test_catalog_reads_send_core_statements_not_orm_ones(app: Flask, client: FlaskClient) -> None:
    """Catalog reads name the tables' columns: the session runs them as plain SQL, without
    the ORM's compile state and result setup (ARCHITECTURE.md, rule 3)."""
    category = make_category(app, "mugs", "Mugs")
    product = make_product(app, name="Blue mug", category_ids=[category])
    kinds: list[bool] = []

    def record(state: ORMExecuteState) -> None:
        kinds.append(state.is_orm_statement)

    paths = (
        f"{PRODUCTS}?per_page=5",
        f"{PRODUCTS}?limit=5&sort=-price",
        f"{PRODUCTS}?q=mug&category=mugs&min_price=0.5&in_stock=true",
        f"{PRODUCTS}/{product}",
        "/api/v1/categories",
        "/api/v1/categories/mugs",
    )
    sa.event.listen(Session, "do_orm_execute", record)
    try:
        for path in paths:
            forget_cached_catalog(app)
            assert client.get(path).status_code == 200, path
    finally:
        sa.event.remove(Session, "do_orm_execute", record)
    assert len(kinds) >= len(paths) and not any(kinds)


def test_the_sku_filter_finds_exactly_that_product_in_any_case(app: Flask, client: FlaskClient) -> None:
    """Not a search: ``MUG-1`` does not find ``MUG-10``."""
    make_product(app, sku="MUG-1", name="Mug")
    make_product(app, sku="MUG-10", name="Big mug")
    assert names(client.get(f"{PRODUCTS}?sku=mug-1")) == ["Mug"]
    assert names(client.get(f"{PRODUCTS}?sku=MUG-10&limit=5")) == ["Big mug"]
    assert names(client.get(f"{PRODUCTS}?sku=NONE-1")) == []
    refused = client.get(f"{PRODUCTS}?sku=not%20a%20sku")
    assert refused.status_code == 422
    assert json_of(refused)["error"]["details"][0]["field"] == "sku"


def test_staff_sync_incrementally_by_updated_at(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    """``updated_after`` (at or after) with ``sort=updated_at``: what changed since the last
    sync, oldest change first, in both styles; a change during the walk comes again later."""
    make_product(app, name="Untouched")
    first, second = make_product(app, name="First"), make_product(app, name="Second")
    since = json_of(client.get(f"{PRODUCTS}/{second}", headers=staff.headers))["data"]["updated_at"]
    for product_id, price in ((second, "2.00"), (first, "1.00")):
        response = client.patch(f"{PRODUCTS}/{product_id}", json={"price": price}, headers=staff.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
    changed = f"{PRODUCTS}?updated_after={since}&sort=updated_at"
    assert names(client.get(changed, headers=staff.headers)) == ["Second", "First"]
    assert names(client.get(f"{changed},-name&per_page=1&page=2", headers=staff.headers)) == ["First"]
    page = json_of(client.get(f"{changed}&limit=1", headers=staff.headers))
    assert [p["name"] for p in page["data"]] == ["Second"] and page["meta"]["has_more"] is True
    response = client.patch(f"{PRODUCTS}/{second}", json={"price": "2.50"}, headers=staff.headers)
    assert response.status_code == 200
    rest = client.get(f"{changed}&limit=5&cursor={page['meta']['next_cursor']}", headers=staff.headers)
    assert names(rest) == ["First", "Second"]  # changed again during the walk: seen again, at its new place
    assert names(client.get(f"{PRODUCTS}?sort=-updated_at&per_page=1", headers=staff.headers)) == ["Second"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("updated_after=2026-01-01T00:00:00Z", "updated_after", "Only staff may filter by updated_after."),
        ("sort=updated_at", "sort", "Only staff may sort by updated_at."),
        ("sort=name,-updated_at", "sort", "Only staff may sort by updated_at."),
    ],
)
def test_only_staff_filter_or_sort_by_updated_at(
    app: Flask, client: FlaskClient, customer: AuthedUser, query: str, field: str, message: str
) -> None:
    for headers in ({}, customer.headers):
        refused = client.get(f"{PRODUCTS}?{query}", headers=headers)
        assert refused.status_code == 422, refused.get_data(as_text=True)
        assert json_of(refused)["error"]["details"] == [{"field": field, "message": message}]
