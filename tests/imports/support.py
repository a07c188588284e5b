"""Imports through the API: upload a file, start the import, let the worker run it, read it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db, utcnow
from app.products.models import Product, product_categories
from app.products.transfer import relay
from app.products.transfer.models import ProductImport
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.uploads.support import created, post_upload

IMPORTS = "/api/v1/products/imports"
EXPORTS = "/api/v1/products/exports"
HEADER = "sku,name,description,price,compare_at_price,stock,low_stock_threshold,categories,is_active,image_upload_id"


def upload_import(client: FlaskClient, user: AuthedUser, content: bytes, filename: str = "products.csv") -> str:
    upload_id: str = created(post_upload(client, user, content, filename, "import"))["id"]
    return upload_id


def start(client: FlaskClient, user: AuthedUser, upload_id: str, **options: Any) -> dict[str, Any]:
    response = client.post(IMPORTS, json={"upload_id": upload_id, **options}, headers=user.headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    body: dict[str, Any] = json_of(response)["data"]
    assert response.headers["Location"] == f"{IMPORTS}/{body['id']}"
    return body


def get_import(client: FlaskClient, user: AuthedUser, import_id: str) -> dict[str, Any]:
    response = client.get(f"{IMPORTS}/{import_id}", headers=user.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = json_of(response)["data"]
    return body


def run_import(
    client: FlaskClient,
    user: AuthedUser,
    run_jobs: Callable[[], int],
    content: bytes,
    filename: str = "products.csv",
    **options: Any,
) -> dict[str, Any]:
    """Upload, import and wait: the finished import as the API reports it."""
    started = start(client, user, upload_import(client, user, content, filename), **options)
    run_jobs()
    finished = get_import(client, user, started["id"])
    assert finished["status"] in {"succeeded", "failed"}, finished
    return finished


def lost_import(
    app: Flask, upload_id: str, *, attempts: int = 0, status: str = "queued", dry_run: bool = False
) -> uuid.UUID:
    """An import row whose job never reached Redis (or died with its worker), quiet for a
    while: the clock's relay queues it again."""
    with app.app_context():
        run = ProductImport(
            upload_id=uuid.UUID(upload_id),
            filename="lost.csv",
            content_type="text/csv",
            mode="upsert",
            dry_run=dry_run,
            error_policy="skip_invalid_rows",
            status=status,
            attempts=attempts,
        )
        db.session.add(run)
        db.session.commit()
        import_id = run.id
    quiet_for_a_while(app, import_id)
    return import_id


def quiet_for_a_while(app: Flask, import_id: uuid.UUID | str) -> None:
    """The import's row last moved longer ago than the relay waits for."""
    with app.app_context():
        quiet = utcnow() - relay.QUIET_FOR - timedelta(seconds=5)
        db.session.execute(
            sa.update(ProductImport).where(ProductImport.id == uuid.UUID(str(import_id))).values(updated_at=quiet)
        )
        db.session.commit()


def counts(run: dict[str, Any]) -> tuple[int, int, int, int]:
    return run["created"], run["updated"], run["unchanged"], run["failed"]


def errors_of(run: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(e["row"], e["field"], e["message"]) for e in run["errors"]]


def catalog(app: Flask) -> dict[str, dict[str, Any]]:
    """Every live product by SKU: its columns and category ids (to compare whole catalogs)."""
    with app.app_context():
        rows = db.session.execute(sa.select(Product).where(Product.deleted_at.is_(None))).scalars().all()
        links = db.session.execute(sa.select(product_categories)).all()
        categories: dict[Any, list[str]] = {}
        for product_id, category_id in links:
            categories.setdefault(product_id, []).append(str(category_id))
        return {
            p.sku: {
                "id": str(p.id),
                "slug": p.slug,
                "name": p.name,
                "description": p.description,
                "price": str(p.price),
                "compare_at_price": None if p.compare_at_price is None else str(p.compare_at_price),
                "stock": p.stock,
                "low_stock_threshold": p.low_stock_threshold,
                "is_active": p.is_active,
                "image_upload_id": p.image_upload_id,
                "version": p.version,
                "updated_at": p.updated_at,
                "categories": sorted(categories.get(p.id, [])),
            }
            for p in rows
        }


def without_identity(catalog_rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A catalog without what differs between two equal runs (ids, times)."""
    return {sku: {k: v for k, v in row.items() if k not in {"id", "updated_at"}} for sku, row in catalog_rows.items()}


def csv_file(*rows: str, header: str = HEADER, bom: bool = False) -> bytes:
    text = "\n".join([header, *rows]) + "\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()
