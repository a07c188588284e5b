"""Validating rows by the rules of POST /products, and resolving categories and images per batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db
from app.products.schemas import MAX_CATEGORIES
from app.products.transfer.rows import ROW_FIELD, RawRow, RowError, RowSource, ValidRow
from app.products.transfer.validation import resolve_references, validate
from app.uploads.models import Purpose, Status, Upload
from tests.conftest import json_of
from tests.factories import create_user
from tests.imports.files import csv_rows, json_rows
from tests.products.builders import PRODUCTS, make_category

HEADER = "sku,name,description,price,compare_at_price,stock,low_stock_threshold,categories,is_active,image_upload_id"
FIELDS = ("name", "description", "price", "compare_at_price", "stock", "low_stock_threshold", "is_active")


def csv_row(values: dict[str, str], number: int = 2) -> RawRow:
    return RawRow(number=number, values=values)


def json_row(values: dict[str, Any], number: int = 1) -> RawRow:
    return RawRow(number=number, values=values, source=RowSource.JSON)


def valid(raw: RawRow) -> ValidRow:
    result = validate(raw)
    assert isinstance(result, ValidRow), result
    return result


def errors_of(raw: RawRow) -> list[tuple[str, str]]:
    result = validate(raw)
    assert isinstance(result, list), result
    return [(e.field, e.message) for e in result]


BASE = {"sku": "mug-1", "name": "Mug", "price": "9.99"}


# --- a CSV row --------------------------------------------------------------------------


def test_a_full_csv_row_becomes_typed_values() -> None:
    image = uuid.uuid4()
    (raw,) = csv_rows(f"{HEADER}\nmug-1, Mug ,A mug.,12.5,15.00,7,2,kitchen|sale,TRUE,{image}\n")
    row = valid(raw)
    assert row.number == 2
    assert row.sku == "MUG-1"
    assert row.fields == {
        "name": "Mug",
        "description": "A mug.",
        "price": Decimal("12.50"),
        "compare_at_price": Decimal("15.00"),
        "stock": 7,
        "low_stock_threshold": 2,
        "is_active": True,
        "image_upload_id": image,
    }
    assert row.category_slugs == ["kitchen", "sale"]
    assert row.category_ids is None


def test_an_absent_column_stays_absent_no_default_is_applied() -> None:
    row = valid(csv_row(BASE))
    assert row.fields == {"name": "Mug", "price": Decimal("9.99")}
    assert row.category_slugs is None
    assert row.present == frozenset({"name", "price"})


def test_an_empty_cell_is_an_absent_value_never_a_deletion() -> None:
    empty = {**BASE, "description": "", "compare_at_price": "", "image_upload_id": " ", "categories": ""}
    row = valid(csv_row(empty))
    assert row.fields == {"name": "Mug", "price": Decimal("9.99")}
    assert row.category_slugs is None
    assert row.present == frozenset({"name", "price"})

    # Only the SKU is required of every row (name and price: of a row that creates).
    blanks = {"sku": " ", "name": "", "price": "", "stock": "", "low_stock_threshold": "", "is_active": ""}
    assert errors_of(csv_row(blanks)) == [("sku", "Missing data for required field.")]
    assert valid(csv_row({**blanks, "sku": "MUG-1", "stock": "7"})).fields == {"stock": 7}


def test_description_is_kept_exactly_other_cells_lose_their_padding() -> None:
    row = valid(csv_row({"sku": " mug-1 ", "name": " Mug ", "price": " 9.99 ", "description": "  spaced  "}))
    assert row.sku == "MUG-1"
    assert row.fields == {"name": "Mug", "price": Decimal("9.99"), "description": "  spaced  "}


def test_several_bad_cells_give_one_error_each_with_row_sku_and_column() -> None:
    values = {
        "sku": " bad sku! ",
        "name": "x" * 201,
        "description": "fine",
        "price": "1.999",
        "compare_at_price": "-1",
        "stock": "1.5",
        "low_stock_threshold": "-3",
        "categories": "kitchen|Summer Sale",
        "is_active": "maybe",
        "image_upload_id": "not-a-uuid",
    }
    assert validate(csv_row(values, number=17)) == [
        RowError(
            17,
            "bad sku!",
            "sku",
            "Must be 2 to 64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.",
        ),
        RowError(17, "bad sku!", "name", "Length must be between 1 and 200."),
        RowError(17, "bad sku!", "price", "At most two decimal places are allowed."),
        RowError(17, "bad sku!", "compare_at_price", "Must not be negative."),
        RowError(17, "bad sku!", "stock", "Must be a whole number."),
        RowError(
            17,
            "bad sku!",
            "low_stock_threshold",
            "Must be greater than or equal to 0 and less than or equal to 2147483647.",
        ),
        RowError(
            17,
            "bad sku!",
            "categories",
            "'Summer Sale': Must be lower-case letters and digits in words joined by single hyphens.",
        ),
        RowError(17, "bad sku!", "is_active", "Must be true or false."),
        RowError(17, "bad sku!", "image_upload_id", "Not a valid UUID."),
    ]


def test_compare_at_price_below_price_is_an_error_on_compare_at_price() -> None:
    assert errors_of(csv_row({**BASE, "compare_at_price": "9.98"})) == [
        ("compare_at_price", "Must be greater than or equal to price.")
    ]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("true", True), ("TRUE", True), (" True ", True), ("1", True), ("false", False), ("FALSE", False), ("0", False)],
)
def test_is_active_reads_true_false_1_0_in_any_case(cell: str, expected: bool) -> None:
    assert valid(csv_row({**BASE, "is_active": cell})).fields["is_active"] is expected


@pytest.mark.parametrize("cell", ["yes", "no", "t", "2", "true false"])
def test_is_active_refuses_anything_else_with_the_schemas_message(cell: str) -> None:
    assert errors_of(csv_row({**BASE, "is_active": cell})) == [("is_active", "Must be true or false.")]


@pytest.mark.parametrize(("cell", "expected"), [("12", 12), ("+3", 3), ("12.0", 12), (" 7 ", 7), ("0", 0)])
def test_whole_numbers_are_read_as_integers(cell: str, expected: int) -> None:
    assert valid(csv_row({**BASE, "stock": cell})).fields["stock"] == expected


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("1.5", "Must be a whole number."),
        ("1e3", "Must be a whole number."),
        ("1_000", "Must be a whole number."),
        ("\u0661\u0662", "Must be a whole number."),  # Arabic-Indic digits: int() reads them, the API does not
        ("9" * 40, "Must be a whole number."),
        ("-1", "Must be greater than or equal to 0 and less than or equal to 2147483647."),
        ("2147483648", "Must be greater than or equal to 0 and less than or equal to 2147483647."),
    ],
)
def test_other_numbers_get_the_schemas_error(cell: str, message: str) -> None:
    assert errors_of(csv_row({**BASE, "stock": cell})) == [("stock", message)]


def test_categories_are_slugs_separated_by_bars_repeats_once_blanks_ignored() -> None:
    row = valid(csv_row({**BASE, "categories": " sale | kitchen|sale||"}))
    assert row.category_slugs == ["sale", "kitchen"]
    assert "categories" in row.present and "categories" not in row.fields


def test_at_most_max_categories() -> None:
    slugs = [f"c-{i}" for i in range(MAX_CATEGORIES + 1)]
    assert valid(csv_row({**BASE, "categories": "|".join(slugs[:-1] + slugs[:3])})).category_slugs == slugs[:-1]
    assert errors_of(csv_row({**BASE, "categories": "|".join(slugs)})) == [
        ("categories", f"At most {MAX_CATEGORIES} categories (found {MAX_CATEGORIES + 1}).")
    ]


def test_a_row_problem_from_reading_is_the_only_error() -> None:
    raw = RawRow(number=9, values={"sku": " a-1 ", "price": "bad"}, problem="Expected 3 cells, found 2.")
    assert validate(raw) == [RowError(row=9, sku="A-1", field=ROW_FIELD, message="Expected 3 cells, found 2.")]


# --- a JSON row -------------------------------------------------------------------------


def test_json_values_reach_the_schema_as_they_are() -> None:
    (raw,) = json_rows(
        '[{"sku": "mug-1", "name": "Mug", "price": "19.99", "compare_at_price": null, "stock": 5.0,'
        ' "low_stock_threshold": 0, "is_active": false, "categories": ["sale", "kitchen", "sale"],'
        ' "description": "", "image_upload_id": null}]'
    )
    row = valid(raw)
    assert row.fields == {
        "name": "Mug",
        "price": Decimal("19.99"),
        "compare_at_price": None,
        "stock": 5,
        "low_stock_threshold": 0,
        "is_active": False,
        "description": "",
        "image_upload_id": None,
    }
    assert row.category_slugs == ["sale", "kitchen"]


def test_json_values_of_the_wrong_type_are_refused_as_in_a_request_body() -> None:
    (raw,) = json_rows(
        '[{"sku": 12345, "name": "Mug", "price": 19.99, "stock": "5", "low_stock_threshold": 2.5,'
        ' "is_active": "true", "description": null, "categories": "sale"}]'
    )
    assert errors_of(raw) == [
        ("sku", "Not a valid string."),
        ("description", "Field may not be null."),
        ("price", 'Not a valid amount: a decimal string such as "19.99".'),  # API.md: never a number
        ("stock", "Must be a whole number."),
        ("low_stock_threshold", "Must be a whole number."),
        ("categories", "Must be an array of category slugs."),
        ("is_active", "Must be true or false."),
    ]
    assert validate(raw)[0].sku is None  # type: ignore[index]  # not text: no SKU to name


def test_json_category_items_must_be_slugs() -> None:
    raw = json_row({**BASE, "categories": ["sale", 7, "Not A Slug"]})
    assert errors_of(raw) == [
        ("categories", "Item 2: Not a valid string."),
        ("categories", "'Not A Slug': Must be lower-case letters and digits in words joined by single hyphens."),
    ]


def test_a_huge_json_exponent_is_refused_not_expanded() -> None:
    (raw,) = json_rows('[{"sku": "a-1", "name": "x", "price": "1", "stock": 1e999999999}]')
    assert errors_of(raw) == [("stock", "Must be a whole number.")]


def test_the_rules_are_those_of_post_products(app: Flask, client: FlaskClient) -> None:
    body = {"sku": "-x", "name": " ", "price": "1.999", "stock": -1, "is_active": "yes", "compare_at_price": "x"}
    staff = create_user(app, role="staff")
    response = client.post(PRODUCTS, json=body, headers=staff.headers)
    assert response.status_code == 422
    api_errors = {(d["field"], d["message"]) for d in json_of(response)["error"]["details"]}
    assert set(errors_of(json_row(body))) == api_errors


# --- references, per batch --------------------------------------------------------------


@pytest.fixture
def count_queries(app: Flask, app_ctx: None) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(db.engine, "before_cursor_execute", record)
    yield statements
    sa.event.remove(db.engine, "before_cursor_execute", record)


def make_upload(app: Flask, *, purpose: str = Purpose.PRODUCT_IMAGE, status: str = Status.READY) -> uuid.UUID:
    owner = create_user(app, role="staff")
    with app.app_context():
        upload = Upload(owner_id=uuid.UUID(owner.id), purpose=purpose, status=status, filename="mug.png")
        db.session.add(upload)
        db.session.commit()
        return upload.id


def rows_with(*values: dict[str, str]) -> list[ValidRow]:
    return [valid(csv_row({**BASE, "sku": f"sku-{i}", **v}, number=i + 2)) for i, v in enumerate(values)]


def test_category_slugs_resolve_to_ids_in_the_given_order(app: Flask, count_queries: list[str]) -> None:
    kitchen, sale = make_category(app, "kitchen"), make_category(app, "sale")
    rows = rows_with({"categories": "sale|kitchen"}, {"categories": "kitchen"}, {"categories": " "}, {})
    count_queries.clear()
    passed, errors = resolve_references(rows)
    assert errors == []
    assert [row.category_ids for row in passed] == [
        [uuid.UUID(sale), uuid.UUID(kitchen)],
        [uuid.UUID(kitchen)],
        None,  # an empty cell: nothing to change
        None,  # no categories column: nothing to change
    ]
    assert len(count_queries) == 1


def test_unknown_slugs_are_an_error_on_their_row_only(app: Flask, count_queries: list[str]) -> None:
    make_category(app, "kitchen")
    rows = rows_with({"categories": "kitchen|nope|gone"}, {"categories": "kitchen"})
    count_queries.clear()
    passed, errors = resolve_references(rows)
    assert [row.sku for row in passed] == ["SKU-1"]
    assert errors == [RowError(row=2, sku="SKU-0", field="categories", message="Unknown category slug(s): nope, gone.")]
    assert len(count_queries) == 1


def test_an_image_must_be_a_ready_product_image(app: Flask, count_queries: list[str]) -> None:
    ready = make_upload(app)
    processing = make_upload(app, status=Status.PROCESSING)
    an_import = make_upload(app, purpose=Purpose.IMPORT)
    rows = rows_with(*({"image_upload_id": str(i)} for i in (ready, processing, an_import, uuid.uuid4())))
    count_queries.clear()
    passed, errors = resolve_references(rows)
    assert [row.fields["image_upload_id"] for row in passed] == [ready]
    message = "Must be a ready upload of purpose product_image."
    assert errors == [RowError(row=n, sku=f"SKU-{n - 2}", field="image_upload_id", message=message) for n in (3, 4, 5)]
    assert len(count_queries) == 1


def test_the_image_message_is_the_apis(app: Flask, client: FlaskClient) -> None:
    staff = create_user(app, role="staff")
    body = {"sku": "MUG-1", "name": "Mug", "price": "9.99", "stock": 1, "image_upload_id": str(uuid.uuid4())}
    response = client.post(PRODUCTS, json=body, headers=staff.headers)
    assert json_of(response)["error"]["details"] == [
        {"field": "image_upload_id", "message": "Must be a ready upload of purpose product_image."}
    ]


def test_a_batch_without_references_asks_nothing(count_queries: list[str]) -> None:
    passed, errors = resolve_references(rows_with({}, {"image_upload_id": ""}))
    assert len(passed) == 2 and errors == []
    assert count_queries == []
