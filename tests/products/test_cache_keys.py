"""The key of a cached public answer: one per request, however a client spells it.

A key made of the query string as sent gave every spelling of one request an entry of its
own (``?per_page=100&``, ``?per_page=100&&``, …): an anonymous client could keep as many
copies of one answer in Redis as it had requests to send.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from app.extensions import redis_queues
from app.products import cache
from app.products.reads import canonical_query
from tests.conftest import json_of
from tests.products.builders import CATEGORIES, PRODUCTS, make_category, make_product


def _key(query: str) -> str:
    """``canonical_query`` of the arguments Werkzeug reads from ``query``, as a view would."""
    environ = EnvironBuilder(path="/").get_environ()
    environ["QUERY_STRING"] = query
    return canonical_query(Request(environ).args)


@pytest.mark.parametrize(
    "spelling",
    ["a=1&b=2", "b=2&a=1", "&a=1&&b=2&", "a=1&b=2&&&&&&", "%61=1&b=%32", "b=2&%61=1", "a=%31&b=2"],
)
def test_spellings_of_one_query_are_one_key(spelling: str) -> None:
    assert _key(spelling) == _key("a=1&b=2")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("sort=-name,price", "sort=-name%2Cprice"),
        ("q=caf%C3%A9", "q=caf\xc3\xa9"),  # escaped or raw UTF-8
        ("q", "q="),
        ("q=%FF", "q=%25FF"),  # an escape that is no UTF-8 reads as itself
    ],
)
def test_what_reads_the_same_is_one_key(one: str, other: str) -> None:
    assert _key(one) == _key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("a=1&b=2", "a=1&b=3"),
        ("a%3Db=c", "a=b=c"),  # a name holding "=" is not a name and a value holding it
        ("q=a%26b", "q=a&b"),  # nor is an escaped "&" a separator
        ("q=a+b", "q=a%2Bb"),  # a space is not a plus
        ("f=1&f=2", "f=2&f=1"),  # a repeated name keeps its values' order
    ],
)
def test_different_queries_stay_different_keys(one: str, other: str) -> None:
    assert _key(one) != _key(other)


def _entries(app: Flask) -> int:
    with app.app_context():
        return sum(1 for _ in redis_queues.catalog_cache.scan_iter(match=cache.ENTRY_PREFIX + "*", count=1000))


@pytest.mark.services
@pytest.mark.parametrize("path", [PRODUCTS, CATEGORIES])
def test_an_answer_is_kept_once_whatever_the_spelling_of_its_request(
    app: Flask, client: FlaskClient, path: str
) -> None:
    make_product(app, name="Mug")
    make_category(app, "mugs", "Mugs")
    first = client.get(f"{path}?per_page=5&sort=name")
    assert first.status_code == 200
    before = _entries(app)
    spellings = [f"{path}?per_page=5&sort=name" + "&" * n for n in range(1, 30)]
    spellings += [f"{path}?sort=name&per_page=5", f"{path}?%70er_page=5&sort=name", f"{path}?&&sort=name&per_page=5"]
    for spelling in spellings:
        response = client.get(spelling)
        assert response.status_code == 200 and json_of(response) == json_of(first), spelling
        assert response.headers["ETag"] == first.headers["ETag"]
    assert _entries(app) == before
    # Another request is another answer, kept apart.
    assert client.get(f"{path}?per_page=4&sort=name").status_code == 200
    assert _entries(app) > before
