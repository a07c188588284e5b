"""The database backs the catalog's invariants itself, whatever code writes to it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import IntegrityError

from app.db import db
from app.products.models import Product
from tests.products.builders import make_product


@pytest.mark.parametrize(
    "values",
    [
        {"stock": -1},
        {"price": Decimal("-0.01")},
        {"compare_at_price": Decimal("9.99")},  # below the price 10.00
        {"low_stock_threshold": -1},
        {"version": 0},
    ],
    ids=lambda v: next(iter(v)),
)
def test_check_constraints_refuse_invalid_rows(app: Flask, values: dict[str, Any]) -> None:
    product_id = uuid.UUID(make_product(app, price=Decimal("10.00"), compare_at_price=Decimal("12.00")))
    with app.app_context(), db.engine.connect() as conn:
        with pytest.raises(IntegrityError):
            conn.execute(sa.update(Product).where(Product.id == product_id).values(**values))
        conn.rollback()


def test_only_live_products_claim_a_sku_or_slug(app: Flask) -> None:
    make_product(app, sku="DUP-1", slug="dup-one")
    with app.app_context(), db.engine.connect() as conn:
        with pytest.raises(IntegrityError):
            conn.execute(sa.insert(Product).values(**_row(sku="DUP-1", slug="other")))
        conn.rollback()
        conn.execute(sa.update(Product).values(deleted_at=sa.func.current_timestamp()))
        conn.execute(sa.insert(Product).values(**_row(sku="DUP-1", slug="dup-one")))


@pytest.mark.services
def test_postgresql_serves_search_with_full_text_and_trigram_indexes(app: Flask) -> None:
    with app.app_context():
        rows = db.session.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'products'")
        ).all()
    indexes = dict(rows)
    for column in ("name", "sku"):
        assert "gin_trgm_ops" in indexes[f"ix_products_{column}_trgm"], indexes
    assert "ix_products_description_trgm" not in indexes  # description: words, through the document
    assert "USING gin (search_vector)" in indexes["ix_products_search_vector"]
    for column in ("sku", "slug"):
        definition = indexes[f"uq_products_{column}"]
        assert "UNIQUE" in definition and "deleted_at IS NULL" in definition, definition
    for pair in ("name_id", "price_id", "created_at_id"):
        assert f"ix_products_{pair}" in indexes


def _row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": "Raw",
        "description": "",
        "price": Decimal("1.00"),
        "stock": 1,
        "low_stock_threshold": 1,
        "is_active": True,
        "version": 1,
        "created_at": sa.func.current_timestamp(),
        "updated_at": sa.func.current_timestamp(),
    }
    row.update(values)
    return row
