"""Writing a batch of validated import rows, straight through ``write_batch`` (both backends).

The import as a whole (files, HTTP, jobs) is tested elsewhere; here a batch meets the
catalog: what each row does, what is (not) written, and what a dry run says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.db import db, utcnow
from app.products.models import Product, product_categories
from app.products.transfer import writing
from app.products.transfer.rows import ROW_FIELD, BatchOutcome, Mode, RowError, ValidRow
from app.products.transfer.writing import BELOW_PRICE, SKU_EXISTS, write_batch
from tests.products.builders import make_category, make_product


def row(number: int, sku: str, *, categories: Sequence[str] | None = None, **fields: Any) -> ValidRow:
    """A validated row: ``fields`` as given (the columns present), ``categories`` as ids."""
    ids = None if categories is None else [uuid.UUID(c) for c in categories]
    return ValidRow(
        number=number,
        sku=sku,
        fields=fields,
        category_slugs=None if ids is None else [str(i) for i in ids],
        category_ids=ids,
    )


def write(app: Flask, rows: Sequence[ValidRow], *, mode: Mode = Mode.UPSERT, dry_run: bool = False) -> BatchOutcome:
    """One batch in its own transaction, committed as the runner does."""
    with app.app_context():
        outcome = write_batch(rows, mode=mode, dry_run=dry_run)
        db.session.commit()
    return outcome


def stored(app: Flask, sku: str) -> dict[str, Any]:
    """The live product with ``sku``: its columns, and ``categories`` as a set of id strings."""
    with app.app_context():
        product = db.session.execute(
            sa.select(Product.__table__).where(Product.sku == sku, Product.deleted_at.is_(None))
        ).one()
        links = db.session.scalars(
            sa.select(product_categories.c.category_id).where(product_categories.c.product_id == product.id)
        )
        return {**product._asdict(), "categories": {str(i) for i in links}}


def catalog(app: Flask) -> tuple[list[Any], list[Any]]:
    """Every product row (all columns) and every category link, in a stable order."""
    with app.app_context():
        products = db.session.execute(sa.select(Product.__table__).order_by(Product.id)).all()
        links = db.session.execute(
            sa.select(product_categories).order_by(product_categories.c.product_id, product_categories.c.category_id)
        ).all()
        return [tuple(p) for p in products], [tuple(link) for link in links]


def deleted_product(app: Flask, **fields: Any) -> str:
    return make_product(app, deleted_at=utcnow(), **fields)


# --- creating ----------------------------------------------------------------------------


def test_a_new_row_takes_the_defaults_of_post_products(app: Flask) -> None:
    outcome = write(app, [row(2, "MUG-1", name="Blue Mug", price=Decimal("9.50"))])

    product = stored(app, "MUG-1")
    assert outcome == BatchOutcome(created=1, changed_ids=[product["id"]])
    assert product["slug"] == "blue-mug"
    assert product["name"] == "Blue Mug"
    assert product["price"] == Decimal("9.50")
    assert product["description"] == ""
    assert product["compare_at_price"] is None
    assert product["stock"] == 0
    assert product["low_stock_threshold"] == 5
    assert product["is_active"] is True
    assert product["image_upload_id"] is None
    assert product["version"] == 1
    assert product["created_at"] == product["updated_at"]
    assert product["categories"] == set()


def test_generated_slugs_are_unique_among_live_products_and_within_the_batch(app: Flask) -> None:
    make_product(app, slug="lamp")
    make_product(app, slug="lamp-2")
    deleted_product(app, slug="desk")  # a soft-deleted product's slug is free
    names = ["Lamp", "Lamp", "Lamp 3", "Desk", "Chair", "chair!", "!!!"]
    rows = [row(n, f"NEW-{n}", name=name, price=Decimal("1.00")) for n, name in enumerate(names, start=2)]

    outcome = write(app, rows)

    assert outcome.created == len(rows) and not outcome.errors
    slugs = [stored(app, f"NEW-{n}")["slug"] for n in range(2, 2 + len(names))]
    # As POST /products would give them one after the other: base, else base-2, base-3…
    assert slugs == ["lamp-3", "lamp-4", "lamp-3-2", "desk", "chair", "chair-2", "product"]


def test_slugs_past_a_long_run_of_taken_suffixes_are_still_the_first_free(app: Flask) -> None:
    make_product(app, slug="vase")
    for n in range(2, 40):
        make_product(app, slug=f"vase-{n}")
    rows = [row(n, f"VASE-{n}", name="Vase", price=Decimal("1.00")) for n in range(2, 5)]

    write(app, rows)

    assert [stored(app, f"VASE-{n}")["slug"] for n in range(2, 5)] == ["vase-40", "vase-41", "vase-42"]


def test_create_mode_refuses_an_existing_sku_on_that_row(app: Flask) -> None:
    make_product(app, sku="OLD-1", name="Old", price=Decimal("5.00"))
    before = stored(app, "OLD-1")

    outcome = write(
        app,
        [row(2, "OLD-1", name="Renamed", price=Decimal("7.00")), row(3, "NEW-1", name="New", price=Decimal("1.00"))],
        mode=Mode.CREATE,
    )

    assert outcome.errors == [RowError(row=2, sku="OLD-1", field="sku", message=SKU_EXISTS)]
    assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 0, 0)
    assert outcome.changed_ids == [stored(app, "NEW-1")["id"]]
    assert stored(app, "OLD-1") == before


def test_a_soft_deleted_products_sku_can_be_created_again(app: Flask) -> None:
    old_id = deleted_product(app, sku="GONE-1", slug="gone", name="Gone")

    outcome = write(app, [row(2, "GONE-1", name="Gone", price=Decimal("3.00"))], mode=Mode.CREATE)

    again = stored(app, "GONE-1")
    assert outcome.created == 1 and not outcome.errors
    assert str(again["id"]) != old_id
    assert again["slug"] == "gone"


# --- updating ----------------------------------------------------------------------------


def test_upsert_updates_a_row_that_differs_and_leaves_an_identical_one_unwritten(app: Flask) -> None:
    make_product(app, sku="A-1", name="Alpha", price=Decimal("10.00"), stock=3, description="Kept")
    make_product(app, sku="B-1", name="Beta", price=Decimal("20.00"), stock=4)
    alpha, beta = stored(app, "A-1"), stored(app, "B-1")

    outcome = write(
        app,
        [
            row(2, "A-1", name="Alpha", price=Decimal("12.00")),
            # Equal values, however written (20.0 is 20.00 once stored).
            row(3, "B-1", name="Beta", price=Decimal("20.0"), stock=4),
        ],
    )

    assert outcome == BatchOutcome(updated=1, unchanged=1, changed_ids=[alpha["id"]])
    after = stored(app, "A-1")
    assert after["price"] == Decimal("12.00")
    assert after["version"] == alpha["version"] + 1
    assert after["updated_at"] > alpha["updated_at"]
    assert (after["stock"], after["description"], after["slug"]) == (3, "Kept", alpha["slug"])
    assert stored(app, "B-1") == beta  # version and updated_at included


def test_absent_columns_are_left_as_they_are(app: Flask) -> None:
    category = make_category(app, "kitchen")
    make_product(
        app,
        sku="A-1",
        name="Alpha",
        price=Decimal("10.00"),
        compare_at_price=Decimal("15.00"),
        stock=7,
        low_stock_threshold=2,
        is_active=False,
        description="Kept",
        category_ids=[category],
    )
    before = stored(app, "A-1")

    outcome = write(app, [row(2, "A-1", name="Alpha renamed", price=Decimal("11.00"))])

    after = stored(app, "A-1")
    assert outcome.updated == 1
    assert (after["name"], after["price"]) == ("Alpha renamed", Decimal("11.00"))
    for column in ("slug", "description", "compare_at_price", "stock", "low_stock_threshold", "is_active"):
        assert after[column] == before[column], column
    assert after["categories"] == {category}


def test_categories_are_replaced_emptied_or_left_alone(app: Flask) -> None:
    c1, c2, c3 = (make_category(app, slug) for slug in ("one", "two", "three"))
    same: dict[str, Any] = {"name": "Same", "price": Decimal("5.00")}
    for sku, categories in (("REPL", [c1, c2]), ("KEEP", [c1]), ("EMPTY", [c1, c2]), ("EQUAL", [c1, c2])):
        make_product(app, sku=sku, category_ids=categories, **same)
    before = {sku: stored(app, sku) for sku in ("REPL", "KEEP", "EMPTY", "EQUAL")}

    outcome = write(
        app,
        [
            row(2, "REPL", categories=[c3], **same),
            row(3, "KEEP", **same),  # no categories column: untouched
            row(4, "EMPTY", categories=[], **same),
            row(5, "EQUAL", categories=[c2, c1, c2], **same),  # the same set
            row(6, "NEW", categories=[c1, c1, c2], **same),
        ],
    )

    assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 2, 2) and not outcome.errors
    assert stored(app, "REPL")["categories"] == {c3}
    assert stored(app, "EMPTY")["categories"] == set()
    assert stored(app, "KEEP") == before["KEEP"]
    assert stored(app, "EQUAL") == before["EQUAL"]
    assert stored(app, "NEW")["categories"] == {c1, c2}
    for sku in ("REPL", "EMPTY"):  # a change of categories alone is a new version
        assert stored(app, sku)["version"] == before[sku]["version"] + 1


def test_the_merged_compare_at_price_must_not_fall_below_the_price(app: Flask) -> None:
    for sku in ("LOW", "OK", "CLEARED"):
        make_product(app, sku=sku, name=sku, price=Decimal("10.00"), compare_at_price=Decimal("12.00"))
    before = stored(app, "LOW")

    outcome = write(
        app,
        [
            row(2, "LOW", name="LOW", price=Decimal("15.00")),  # 12.00 stays, below 15.00
            row(3, "OK", name="OK", price=Decimal("11.00")),
            row(4, "CLEARED", name="CLEARED", price=Decimal("15.00"), compare_at_price=None),
            row(5, "NEW", name="New", price=Decimal("10.00"), compare_at_price=Decimal("5.00")),
        ],
    )

    assert outcome.errors == [
        RowError(row=2, sku="LOW", field="compare_at_price", message=BELOW_PRICE),
        RowError(row=5, sku="NEW", field="compare_at_price", message=BELOW_PRICE),
    ]
    assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 2, 0)
    assert stored(app, "LOW") == before
    assert stored(app, "CLEARED")["compare_at_price"] is None


def test_rows_with_different_columns_in_one_batch(app: Flask) -> None:
    category = make_category(app, "garden")
    make_product(app, sku="A-1", name="Alpha", price=Decimal("10.00"), stock=1, description="Alpha text")
    make_product(app, sku="B-1", name="Beta", price=Decimal("10.00"), stock=1, description="Beta text")
    rows = [
        row(2, "A-1", name="Alpha", price=Decimal("10.00"), stock=7),
        row(3, "B-1", categories=[category], name="Beta", price=Decimal("10.00"), description="New", is_active=False),
        row(4, "C-1", name="Gamma", price=Decimal("3.00")),
        row(5, "D-1", name="Delta", price=Decimal("4.00"), stock=4, low_stock_threshold=1, description="Delta text"),
    ]

    outcome = write(app, rows)

    assert (outcome.created, outcome.updated, outcome.unchanged) == (2, 2, 0) and not outcome.errors
    alpha, beta, gamma, delta = (stored(app, sku) for sku in ("A-1", "B-1", "C-1", "D-1"))
    assert (alpha["stock"], alpha["description"], alpha["is_active"]) == (7, "Alpha text", True)
    assert (beta["stock"], beta["description"], beta["is_active"]) == (1, "New", False)
    assert beta["categories"] == {category}
    assert (gamma["stock"], gamma["description"], gamma["low_stock_threshold"]) == (0, "", 5)
    assert (delta["stock"], delta["description"], delta["low_stock_threshold"]) == (4, "Delta text", 1)
    # The same file again changes nothing.
    assert write(app, rows) == BatchOutcome(unchanged=4)


# --- dry runs and transactions -----------------------------------------------------------


def _mixed_catalog(app: Flask) -> list[ValidRow]:
    """Products and a batch that touches them every way: updates, unchanged, errors, creates."""
    c1, c2 = make_category(app, "one"), make_category(app, "two")
    make_product(app, sku="SAME", name="Same", price=Decimal("5.00"), category_ids=[c1])
    make_product(app, sku="PRICE", name="Price", price=Decimal("5.00"))
    make_product(app, sku="CATS", name="Cats", price=Decimal("5.00"), category_ids=[c1])
    make_product(app, sku="BELOW", name="Below", price=Decimal("5.00"), compare_at_price=Decimal("6.00"))
    make_product(app, slug="twin")
    return [
        row(2, "SAME", categories=[c1], name="Same", price=Decimal("5.00")),
        row(3, "PRICE", name="Price", price=Decimal("6.00")),
        row(4, "CATS", categories=[c1, c2], name="Cats", price=Decimal("5.00")),
        row(5, "BELOW", name="Below", price=Decimal("7.00")),
        row(6, "NEW-1", categories=[c2], name="Twin", price=Decimal("1.00")),
        row(7, "NEW-2", name="Twin", price=Decimal("1.00"), stock=3),
    ]


@pytest.mark.parametrize("mode", list(Mode))
def test_a_dry_run_says_what_a_real_run_does_and_writes_nothing(app: Flask, mode: Mode) -> None:
    rows = _mixed_catalog(app)
    before = catalog(app)

    dry = write(app, rows, mode=mode, dry_run=True)

    assert catalog(app) == before
    real = write(app, rows, mode=mode)
    assert dry.changed_ids == [] and len(real.changed_ids) == real.created + real.updated
    assert (dry.created, dry.updated, dry.unchanged, dry.errors) == (
        real.created,
        real.updated,
        real.unchanged,
        real.errors,
    )
    expected = (2, 2, 1, 1) if mode == Mode.UPSERT else (2, 0, 0, 4)
    assert (real.created, real.updated, real.unchanged, len(real.errors)) == expected
    assert catalog(app) != before


def test_the_batch_is_written_in_the_callers_transaction(app: Flask) -> None:
    make_product(app, sku="A-1", name="Alpha", price=Decimal("1.00"))
    before = catalog(app)
    with app.app_context():
        write_batch([row(2, "A-1", name="Alpha", price=Decimal("2.00"))], mode=Mode.UPSERT, dry_run=False)
        write_batch([row(3, "B-1", name="Beta", price=Decimal("2.00"))], mode=Mode.UPSERT, dry_run=False)
        db.session.rollback()
    assert catalog(app) == before

    with app.app_context():  # several batches in one transaction (as reject_all writes)
        first = write_batch([row(2, "A-1", name="Alpha", price=Decimal("2.00"))], mode=Mode.UPSERT, dry_run=False)
        second = write_batch([row(3, "B-1", name="Beta", price=Decimal("2.00"))], mode=Mode.UPSERT, dry_run=False)
        db.session.commit()
    assert (first.updated, second.created) == (1, 1)
    assert stored(app, "A-1")["price"] == stored(app, "B-1")["price"] == Decimal("2.00")


# --- PostgreSQL: rows not rewritten, races with concurrent requests ----------------------


def _xmin(app: Flask, sku: str) -> str:
    with app.app_context():
        return str(db.session.scalar(sa.text("SELECT xmin::text FROM products WHERE sku = :sku"), {"sku": sku}))


@pytest.mark.services
def test_an_unchanged_row_is_not_rewritten(app: Flask) -> None:
    category = make_category(app, "one")
    make_product(app, sku="SAME", name="Same", price=Decimal("5.00"), stock=2, category_ids=[category])
    make_product(app, sku="MOVED", name="Moved", price=Decimal("5.00"))
    same, moved = _xmin(app, "SAME"), _xmin(app, "MOVED")

    outcome = write(
        app,
        [
            row(2, "SAME", categories=[category], name="Same", price=Decimal("5.00"), stock=2),
            row(3, "MOVED", name="Moved", price=Decimal("6.00")),
        ],
    )

    assert (outcome.updated, outcome.unchanged) == (1, 1)
    assert _xmin(app, "SAME") == same  # the same tuple: no UPDATE ran, nothing to vacuum
    assert _xmin(app, "MOVED") != moved


@pytest.mark.services
def test_the_callers_transaction_keeps_its_settings(app: Flask) -> None:
    with app.app_context():
        before = db.session.execute(sa.text("SHOW jit")).scalar_one()  # turned off while a batch is written
        write_batch([row(2, "A-1", name="Alpha", price=Decimal("1.00"))], mode=Mode.UPSERT, dry_run=False)
        assert db.session.execute(sa.text("SHOW jit")).scalar_one() == before
        db.session.rollback()


def _taken_meanwhile(app: Flask, monkeypatch: pytest.MonkeyPatch, **competitor: Any) -> None:
    """Make a concurrent request commit ``competitor`` (a product) just before the batch's
    INSERT: after the batch was classified, while its slugs are generated."""
    original: Callable[[Sequence[str]], list[str]] = writing._new_slugs
    done: list[bool] = []

    def slugs_then_competitor(names: Sequence[str]) -> list[str]:
        slugs = original(names)
        if not done:
            done.append(True)
            values: dict[str, Any] = {"id": uuid.uuid4(), "description": "", "stock": 0, "low_stock_threshold": 5}
            values |= {"is_active": True, "version": 1, "created_at": utcnow(), "updated_at": utcnow()}
            with db.engine.begin() as other:  # another connection, committed at once
                other.execute(sa.insert(Product).values(**values, **competitor))
        return slugs

    monkeypatch.setattr(writing, "_new_slugs", slugs_then_competitor)


@pytest.mark.services
def test_a_sku_created_meanwhile_becomes_an_update_in_upsert(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    _taken_meanwhile(app, monkeypatch, sku="RACE-1", slug="racer", name="Racer", price=Decimal("1.00"))

    outcome = write(app, [row(2, "RACE-1", name="Racer", price=Decimal("2.00"))])

    assert (outcome.created, outcome.updated, outcome.errors) == (0, 1, [])
    assert (stored(app, "RACE-1")["price"], stored(app, "RACE-1")["version"]) == (Decimal("2.00"), 2)


@pytest.mark.services
def test_a_sku_created_meanwhile_is_refused_in_create(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    _taken_meanwhile(app, monkeypatch, sku="RACE-1", slug="racer", name="Racer", price=Decimal("1.00"))

    outcome = write(
        app,
        [row(2, "RACE-1", name="Racer", price=Decimal("2.00")), row(3, "CALM-1", name="Calm", price=Decimal("2.00"))],
        mode=Mode.CREATE,
    )

    assert outcome.errors == [RowError(row=2, sku="RACE-1", field="sku", message=SKU_EXISTS)]
    assert outcome.created == 1
    assert stored(app, "RACE-1")["price"] == Decimal("1.00")


@pytest.mark.services
def test_a_slug_taken_meanwhile_is_generated_again(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    _taken_meanwhile(app, monkeypatch, sku="OTHER-1", slug="lamp", name="Lamp", price=Decimal("1.00"))

    outcome = write(app, [row(2, "LAMP-1", name="Lamp", price=Decimal("2.00"))], mode=Mode.CREATE)

    assert (outcome.created, outcome.errors) == (1, [])
    assert stored(app, "LAMP-1")["slug"] == "lamp-2"
    assert ROW_FIELD not in {e.field for e in outcome.errors}


@pytest.mark.services
def test_a_product_changed_meanwhile_is_compared_again(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    make_product(app, sku="SOLD-1", name="Sold", price=Decimal("1.00"), stock=5)
    make_product(app, sku="EDITED-1", name="Edited", price=Decimal("1.00"))
    original = writing._update_postgresql
    done: list[bool] = []

    def others_then_update(*args: Any) -> Any:
        if not done:  # after the batch was classified, before its UPDATE
            done.append(True)
            with db.engine.begin() as other:
                bump = {"version": Product.version + 1}
                other.execute(sa.update(Product).where(Product.sku == "SOLD-1").values(stock=4, **bump))  # an order
                other.execute(sa.update(Product).where(Product.sku == "EDITED-1").values(price=2, **bump))  # PATCH
        return original(*args)

    monkeypatch.setattr(writing, "_update_postgresql", others_then_update)

    outcome = write(
        app,
        [
            row(2, "SOLD-1", name="Sold", price=Decimal("2.00")),
            row(3, "EDITED-1", name="Edited", price=Decimal("2.00")),
        ],
    )

    assert (outcome.updated, outcome.unchanged, outcome.errors) == (1, 1, [])
    sold, edited = stored(app, "SOLD-1"), stored(app, "EDITED-1")
    assert (sold["price"], sold["stock"], sold["version"]) == (Decimal("2.00"), 4, 3)
    assert (edited["price"], edited["version"]) == (Decimal("2.00"), 2)  # the PATCH's, not rewritten
