"""Anonymous catalog reads the cache holds are answered before their arguments are parsed.

``reads.early_answer`` runs as the products blueprint's first hook: an entry is keyed by
the request's path and query string as sent, so it exists only for a request the view
answered, and must answer it exactly as the view did. The view is replaced by one that
fails in these tests wherever the early answer must have answered alone.
(Rate limits apply to early answers too: tests/security/test_api4_resource_consumption.py
reads the same list four times in the services run.)
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.products import reads
from tests.factories import AuthedUser
from tests.orders.conftest import ADDRESS
from tests.products.builders import CATEGORIES, PRODUCTS, make_category, make_product

pytestmark = pytest.mark.services

# The headers an answer carries that must not differ between the view and the cache.
COMPARED = ("ETag", "Cache-Control", "Vary", "Link", "Content-Type", "Content-Security-Policy", "X-Frame-Options")


class ViewCalls:
    def __init__(self) -> None:
        self.count = 0
        self.fail = False


@pytest.fixture
def view_calls(monkeypatch: pytest.MonkeyPatch) -> ViewCalls:
    """Counts the catalog read use cases the views call (and fails them when asked to)."""
    calls = ViewCalls()
    for name in ("list_products", "get_product", "list_categories", "get_category"):
        original = getattr(reads, name)

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls.count += 1
            if calls.fail:
                raise AssertionError("the view was called: the early answer should have answered")
            return _original(*args, **kwargs)

        monkeypatch.setattr(reads, name, counted)
    return calls


def _paths(app: Flask, client: FlaskClient) -> list[str]:
    mugs = make_category(app, "mugs", "Mugs")
    first = make_product(app, name="Blue mug", category_ids=[mugs])
    slug = client.get(f"{PRODUCTS}/{first}").get_json()["data"]["slug"]
    make_product(app, name="Red mug", category_ids=[mugs], stock=0)
    make_product(app, name="Lamp")
    return [
        f"{PRODUCTS}?per_page=2&sort=name",
        f"{PRODUCTS}?per_page=2&sort=name&page=2&fields=id,name,stock",
        f"{PRODUCTS}?in_stock=true&category=mugs",
        f"{PRODUCTS}?limit=1",
        f"{PRODUCTS}/{first}",
        f"{PRODUCTS}/{slug}?fields=name,price",
        CATEGORIES,
        f"{CATEGORIES}/mugs",
    ]


def test_a_read_the_view_answered_is_answered_again_from_the_cache_alone(
    app: Flask, client: FlaskClient, view_calls: ViewCalls
) -> None:
    for path in _paths(app, client):
        by_view = client.get(path)
        assert by_view.status_code == 200, (path, by_view.get_data(as_text=True))
        view_calls.fail = True
        early = client.get(path)
        assert early.status_code == 200, path
        assert early.get_data() == by_view.get_data(), path
        assert {h: early.headers.get(h) for h in COMPARED} == {h: by_view.headers.get(h) for h in COMPARED}, path
        assert early.headers["X-Request-ID"] != by_view.headers["X-Request-ID"]
        # Revalidation is answered early too.
        assert client.get(path, headers={"If-None-Match": by_view.headers["ETag"]}).status_code == 304, path
        view_calls.fail = False


def test_a_sale_is_laid_over_an_early_answer(
    app: Flask, client: FlaskClient, customer: AuthedUser, view_calls: ViewCalls
) -> None:
    product = make_product(app, name="Kettle", stock=5)
    path = f"{PRODUCTS}/{product}"
    assert client.get(path).get_json()["data"]["stock"] == 5
    placed = client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product, "quantity": 2}], "shipping_address": ADDRESS},
        headers=customer.headers,
    )
    assert placed.status_code == 201, placed.get_data(as_text=True)
    view_calls.fail = True
    assert client.get(path).get_json()["data"]["stock"] == 3


def test_requests_with_credentials_always_reach_the_view(
    app: Flask, client: FlaskClient, customer: AuthedUser, staff: AuthedUser, view_calls: ViewCalls
) -> None:
    make_product(app, name="Hidden", is_active=False)
    client.get(PRODUCTS)
    before = view_calls.count
    # Same answer for a customer, but who sends a token is checked by the view.
    assert client.get(PRODUCTS, headers=customer.headers).status_code == 200
    staff_list = client.get(PRODUCTS, headers=staff.headers)
    assert [p["name"] for p in staff_list.get_json()["data"]] == ["Hidden"]
    assert staff_list.headers["Cache-Control"] == "private, no-store"
    # A bad token is refused (by the view's token check), not answered from the cache.
    assert client.get(PRODUCTS, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "anything")
    assert client.get(PRODUCTS).status_code == 200
    assert view_calls.count == before + 3


@pytest.mark.parametrize(
    "query",
    ["page=0", "per_page=20&bogus=1", "is_active=true", "min_price=5&max_price=1", "page=1&cursor=x", "fields=nope"],
)
def test_a_request_the_view_refuses_is_refused_every_time(app: Flask, client: FlaskClient, query: str) -> None:
    make_product(app, name="Lamp")
    for _ in range(2):
        response = client.get(f"{PRODUCTS}?{query}")
        assert response.status_code == 422, (query, response.get_data(as_text=True))


def test_a_missing_product_is_never_cached(app: Flask, client: FlaskClient, view_calls: ViewCalls) -> None:
    for _ in range(2):
        assert client.get(f"{PRODUCTS}/no-such-product").status_code == 404
    assert view_calls.count == 2


def test_entries_written_under_another_secret_are_not_read(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, view_calls: ViewCalls
) -> None:
    make_product(app, name="Lamp")
    client.get(PRODUCTS)
    client.get(PRODUCTS)
    assert view_calls.count == 1
    monkeypatch.setitem(app.config, "SECRET_KEY", "another secret, as after a rotation")
    assert client.get(PRODUCTS).status_code == 200
    assert view_calls.count == 2
