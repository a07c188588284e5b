"""Catalog test data: request bodies, and rows written straight to the database."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from flask import Flask

from app.db import db
from app.products.cache import catalog_changed
from app.products.models import Category, Product

PRODUCTS = "/api/v1/products"
CATEGORIES = "/api/v1/categories"
_counter = itertools.count(1)


def product_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /products body (unique SKU each call)."""
    n = next(_counter)
    body: dict[str, Any] = {
        "sku": f"TEST-{n:05d}",
        "name": f"Test Product {n}",
        "description": "A product made for tests.",
        "price": "19.99",
        "stock": 10,
    }
    body.update(overrides)
    return body


def make_category(app: Flask, slug: str, name: str | None = None) -> str:
    with app.app_context():
        category = Category(slug=slug, name=name or slug.title())
        db.session.add(category)
        db.session.commit()
        return str(category.id)


def make_product(app: Flask, *, category_ids: Sequence[str] = (), **fields: Any) -> str:
    """One product row (stock 5 unless given); ``fields`` override the defaults. Returns its id."""
    fields.setdefault("stock", 5)
    return make_products(app, 1, start=10_000 + next(_counter), category_ids=category_ids, **fields)[0]


def make_products(
    app: Flask, count: int, *, start: int = 0, category_ids: Sequence[str] = (), **fields: Any
) -> list[str]:
    """``count`` products named ``Product 00000``…, prices 0.99…49.99, stock 0…3."""
    with app.app_context():
        categories = [db.session.get(Category, uuid.UUID(c)) for c in category_ids]
        products = []
        for i in range(start, start + count):
            values: dict[str, Any] = {
                "sku": f"SKU-{i:05d}",
                "slug": f"product-{i:05d}",
                "name": f"Product {i:05d}",
                "description": f"Description of product {i}",
                "price": Decimal(i % 50) + Decimal("0.99"),
                "stock": i % 4,
            }
            values.update(fields)
            products.append(Product(**values, categories=[c for c in categories if c is not None]))
        db.session.add_all(products)
        db.session.commit()
        return [str(p.id) for p in products]


def forget_cached_catalog(app: Flask) -> None:
    """Every cached catalog answer unreachable, as after a write (no-op without Redis)."""
    with app.app_context():
        catalog_changed()
