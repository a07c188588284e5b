"""``?q=``: by word, by any part of a SKU or a name, most relevant first.

PostgreSQL ranks with full-text search (name above SKU above description); SQLite (the
embedded default) matches with LIKE and orders by where the text was found.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.products.builders import PRODUCTS, make_product


def names(client: FlaskClient, query: str) -> list[str]:
    response = client.get(f"{PRODUCTS}?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [p["name"] for p in json_of(response)["data"]]


def _catalog(app: Flask) -> None:
    make_product(app, name="Electric Kettle", sku="KT-200X", description="Boils a litre in a minute")
    make_product(app, name="Teapot", sku="TP-1", description="Goes well with any kettle")
    make_product(app, name="Lamp", sku="LAMP-0042", description="A bright light")
    make_product(app, name="Rug", sku="RG-9", description="Soft")


def test_finds_by_word_by_sku_fragment_and_by_part_of_a_name(app: Flask, client: FlaskClient) -> None:
    _catalog(app)
    assert sorted(names(client, "q=kettle")) == ["Electric Kettle", "Teapot"]
    assert names(client, "q=0042") == ["Lamp"]
    assert names(client, "q=p-00") == ["Lamp"]
    assert names(client, "q=200x") == ["Electric Kettle"]
    assert names(client, "q=lectri") == ["Electric Kettle"]  # inside a word of the name
    assert names(client, "q=boils") == ["Electric Kettle"]
    assert names(client, "q=nothing") == []


def test_a_name_match_ranks_above_a_description_match(app: Flask, client: FlaskClient) -> None:
    _catalog(app)
    assert names(client, "q=kettle") == ["Electric Kettle", "Teapot"]
    assert names(client, "q=kettle&limit=5") == ["Electric Kettle", "Teapot"]
    # An explicit sort wins over relevance.
    assert names(client, "q=kettle&sort=-name") == ["Teapot", "Electric Kettle"]


def test_a_name_match_ranks_above_a_sku_match_above_a_description_match(app: Flask, client: FlaskClient) -> None:
    """As API.md orders them, whichever was created first."""
    make_product(app, name="Plain thing", sku="RVD-ZORBLAT", description="Nothing to see")
    make_product(app, name="Other thing", sku="OT-1", description="Works with a zorblat")
    make_product(app, name="Zorblat widget", sku="ZW-1", description="Nothing to see")
    assert names(client, "q=zorblat") == ["Zorblat widget", "Plain thing", "Other thing"]
    assert names(client, "q=zorblat&limit=2") == ["Zorblat widget", "Plain thing"]


@pytest.mark.services
def test_a_name_matching_by_word_form_ranks_above_a_sku_holding_the_query(app: Flask, client: FlaskClient) -> None:
    """``kettles`` is in the SKU as typed and in the name only as a word form: the name
    still ranks first."""
    make_product(app, name="Plain thing", sku="KETTLES-2", description="Nothing to see")
    make_product(app, name="Electric Kettle", sku="EK-1", description="Nothing to see")
    make_product(app, name="Tea tray", sku="TT-1", description="Carries kettles")
    assert names(client, "q=kettles") == ["Electric Kettle", "Plain thing", "Tea tray"]
    assert names(client, "q=kettles&limit=1") == ["Electric Kettle"]


@pytest.mark.services
def test_postgresql_finds_word_forms_and_word_beginnings(app: Flask, client: FlaskClient) -> None:
    _catalog(app)
    make_product(app, name="Batteries, pack of 4", sku="BT-4", description="For the remote")
    assert names(client, "q=kettles") == ["Electric Kettle", "Teapot"]  # stemmed
    assert names(client, "q=battery") == ["Batteries, pack of 4"]
    assert names(client, "q=electric+ket") == ["Electric Kettle"]  # the last word as typed so far
    assert names(client, "q=bright+lamp") == ["Lamp"]  # words anywhere: name and description
    assert names(client, "q=the") == []  # only a stop word


def _walk(client: FlaskClient, query: str) -> list[str]:
    seen: list[str] = []
    url = f"{PRODUCTS}?{query}&limit=3"
    while url:
        body: dict[str, Any] = json_of(client.get(url))
        seen.extend(p["name"] for p in body["data"])
        cursor = body["meta"]["next_cursor"]
        url = f"{PRODUCTS}?{query}&limit=3&cursor={cursor}" if cursor else ""
    return seen


def test_search_results_walk_with_cursors_in_relevance_order(app: Flask, client: FlaskClient) -> None:
    for n in range(8):
        make_product(app, name=f"Mug {n}", sku=f"MUG-{n}", description="Stoneware")
        make_product(app, name=f"Plate {n}", sku=f"PL-{n}", description="Goes with a mug")
    paged = names(client, "q=mug&per_page=100")
    assert len(paged) == 16 and all(name.startswith("Mug") for name in paged[:8])
    assert _walk(client, "q=mug") == paged
