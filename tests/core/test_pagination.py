"""The shared list module: page and cursor styles, sorting, links, statement counts."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.db import db
from tests.conftest import json_of
from tests.support.sql import count_selects
from tests.support.widgets import Widget

WIDGETS = "/api/v1/_test/widgets"


def make_widgets(app: Flask, count: int, start: int = 0) -> None:
    with app.app_context():
        db.session.add_all(
            Widget(name=f"w{i:04d}", price=Decimal(i % 7) + Decimal("0.99")) for i in range(start, start + count)
        )
        db.session.commit()


def parse_links(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', header)}


def test_page_style_walk_returns_each_exactly_once(app: Flask, client: FlaskClient) -> None:
    make_widgets(app, 53)
    seen: list[str] = []
    page = 1
    while True:
        response = client.get(f"{WIDGETS}?page={page}&per_page=10&sort=name")
        body = json_of(response)
        assert body["meta"] == {"page": page, "per_page": 10, "total": 53, "total_pages": 6}
        seen.extend(w["name"] for w in body["data"])
        links = parse_links(response.headers["Link"])
        assert "first" in links and "last" in links
        assert ("prev" in links) == (page > 1)
        if "next" not in links:
            break
        assert "page=" + str(page + 1) in links["next"] and "sort=name" in links["next"]
        page += 1
    assert page == 6
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 53


def test_page_defaults_and_limits(app: Flask, client: FlaskClient) -> None:
    make_widgets(app, 3)
    body = json_of(client.get(WIDGETS))
    assert body["meta"] == {"page": 1, "per_page": 20, "total": 3, "total_pages": 1}
    for bad in ("per_page=101", "per_page=0", "page=0", "limit=500"):
        response = client.get(f"{WIDGETS}?{bad}")
        assert response.status_code == 422, bad
    beyond = json_of(client.get(f"{WIDGETS}?page=9"))
    assert beyond["data"] == [] and beyond["meta"]["total"] == 3


def test_cursor_walk_is_stable_under_inserts(app: Flask, client: FlaskClient) -> None:
    make_widgets(app, 45)
    seen: list[str] = []
    url = f"{WIDGETS}?limit=10&sort=-price,name"
    inserted = 0
    while True:
        body = json_of(client.get(url))
        assert set(body["meta"]) == {"limit", "next_cursor", "has_more"}
        seen.extend(w["name"] for w in body["data"])
        # New rows arrive between pages; the walk must neither skip nor repeat.
        make_widgets(app, 3, start=1000 + inserted)
        inserted += 3
        if not body["meta"]["has_more"]:
            assert body["meta"]["next_cursor"] is None
            break
        url = f"{WIDGETS}?limit=10&sort=-price,name&cursor={body['meta']['next_cursor']}"
    originals = [n for n in seen if int(n[1:]) < 1000]
    assert len(originals) == len(set(originals)) == 45
    assert len(seen) == len(set(seen))


def test_cursor_order_matches_sort(app: Flask, client: FlaskClient) -> None:
    make_widgets(app, 30)
    rows = []
    url = f"{WIDGETS}?limit=7&sort=-price,name"
    while url:
        body = json_of(client.get(url))
        rows.extend((Decimal(w["price"]), w["name"]) for w in body["data"])
        cursor = body["meta"]["next_cursor"]
        url = f"{WIDGETS}?limit=7&sort=-price,name&cursor={cursor}" if cursor else ""
    assert rows == sorted(rows, key=lambda r: (-r[0], r[1]))
    assert len(rows) == 30


def test_tampered_or_foreign_cursor_is_422(app: Flask, client: FlaskClient) -> None:
    make_widgets(app, 5)
    cursor = json_of(client.get(f"{WIDGETS}?limit=2&sort=name"))["meta"]["next_cursor"]
    for bad in (cursor[:-2] + "xx", "garbage", "eyJzIjoibmFtZSJ9"):
        response = client.get(f"{WIDGETS}?limit=2&sort=name&cursor={bad}")
        assert response.status_code == 422
        assert json_of(response)["error"]["details"][0]["field"] == "cursor"
    other_sort = client.get(f"{WIDGETS}?limit=2&sort=-price&cursor={cursor}")
    assert other_sort.status_code == 422
    # Nor is it valid for other filters: it would go on from a position in another list.
    other_filter = client.get(f"{WIDGETS}?limit=2&sort=name&min_price=1.00&cursor={cursor}")
    assert other_filter.status_code == 422
    assert "filters" in json_of(other_filter)["error"]["details"][0]["message"]
    assert client.get(f"{WIDGETS}?limit=3&sort=name&cursor={cursor}").status_code == 200  # a new limit is fine


def test_a_cursor_issued_before_cursors_named_their_filters_still_walks_an_unfiltered_list(
    app: Flask, client: FlaskClient
) -> None:
    from app.pagination import _serializer

    make_widgets(app, 5)
    first = json_of(client.get(f"{WIDGETS}?limit=2&sort=name"))
    with app.test_request_context():  # the previous version's cursor: it named its sort alone
        payload = _serializer().loads(first["meta"]["next_cursor"])
        assert payload["s"] != "name"
        legacy = _serializer().dumps({**payload, "s": "name"})
    rest = client.get(f"{WIDGETS}?limit=2&sort=name&cursor={legacy}")
    assert rest.status_code == 200, rest.json
    assert [w["name"] for w in json_of(rest)["data"]] == ["w0002", "w0003"]
    assert client.get(f"{WIDGETS}?limit=2&sort=name&min_price=1.00&cursor={legacy}").status_code == 422


def test_mixing_styles_is_422(client: FlaskClient) -> None:
    response = client.get(f"{WIDGETS}?page=2&limit=5")
    assert response.status_code == 422


@pytest.mark.parametrize("sort", ["colour", "-name,colour", "name,name", ""])
def test_unknown_sort_field_is_422_naming_it(client: FlaskClient, sort: str) -> None:
    response = client.get(f"{WIDGETS}?sort={sort}")
    assert response.status_code == 422
    detail = json_of(response)["error"]["details"][0]
    assert detail["field"] == "sort"


def test_filter_and_sort_combine(app: Flask, client: FlaskClient) -> None:
    make_widgets(app, 21)
    body = json_of(client.get(f"{WIDGETS}?min_price=5.00&sort=-price,name&per_page=100"))
    prices = [Decimal(w["price"]) for w in body["data"]]
    assert prices and all(p >= Decimal("5.00") for p in prices)
    assert prices == sorted(prices, reverse=True)
    assert body["meta"]["total"] == len(prices)


def test_statement_count_does_not_grow_with_page_size(app: Flask, client: FlaskClient) -> None:
    make_widgets(app, 60)
    counts = {}
    for size in (5, 50):
        with count_selects(app) as statements:
            assert client.get(f"{WIDGETS}?per_page={size}").status_code == 200
            assert client.get(f"{WIDGETS}?limit={size}").status_code == 200
        counts[size] = len(statements)
    assert counts[5] == counts[50] == 3  # page: count + rows; cursor: rows
