"""Builders for the orders tests: catalog products and an order placed through HTTP."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.db import db, utcnow
from app.products.models import Product
from tests.conftest import json_of
from tests.factories import AuthedUser

_skus = itertools.count(1)

ADDRESS = {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


def make_product(
    app: Flask, *, price: str = "10.00", stock: int = 10, is_active: bool = True, deleted: bool = False
) -> str:
    n = next(_skus)
    with app.app_context():
        product = Product(
            sku=f"SKU-{n:05d}",
            slug=f"product-{n}",
            name=f"Product {n}",
            description="",
            price=Decimal(price),
            stock=stock,
            is_active=is_active,
            deleted_at=utcnow() if deleted else None,
        )
        db.session.add(product)
        db.session.commit()
        return str(product.id)


def stock_of(app: Flask, product_id: str) -> int:
    with app.app_context():
        product = db.session.get(Product, uuid.UUID(product_id))
        assert product is not None
        return product.stock


@pytest.fixture
def place(client: FlaskClient) -> Callable[..., Any]:
    def place_order(user: AuthedUser, lines: list[tuple[str, int]], *, key: str | None = None, **extra: Any) -> Any:
        body = {"items": [{"product_id": p, "quantity": q} for p, q in lines], "shipping_address": ADDRESS, **extra}
        headers = dict(user.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return client.post("/api/v1/orders", json=body, headers=headers)

    return place_order


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = json_of(response)["data"]
    return data
