"""Exports: the catalog in the import format; importing an export changes nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq.timeouts import JobTimeoutException

from app.products.transfer import exports
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.imports.support import EXPORTS, HEADER, catalog, counts, run_import
from tests.products.builders import make_category, make_product
from tests.uploads.support import fetch_content

Jobs = Callable[[], int]


def _catalog_worth_exporting(app: Flask) -> None:
    kitchen, garden = make_category(app, "kitchen"), make_category(app, "garden")
    make_product(
        app,
        sku="MUG-1",
        name="Mug «Ünïcode»",
        price=Decimal("9.99"),
        description='Says "hi",\nin two lines',
        category_ids=[kitchen, garden],
    )
    make_product(
        app,
        sku="LAMP-2",
        name="=Lamp",
        price=Decimal("19.00"),
        compare_at_price=Decimal("25.50"),
        is_active=False,
        stock=0,
    )
    make_product(app, sku="CUP-3", name="Cup", price=Decimal("0.10"), low_stock_threshold=0, description="")


def _content(app: Flask, client: FlaskClient, user: AuthedUser, export: dict[str, Any]) -> bytes:
    status, content, _headers = fetch_content(app, client, export["url"], user)
    assert status == 200
    return content


def _export(client: FlaskClient, user: AuthedUser, run_jobs: Jobs, **body: Any) -> dict[str, Any]:
    response = client.post(EXPORTS, json=body, headers=user.headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    location = response.headers["Location"]
    run_jobs()
    export: dict[str, Any] = json_of(client.get(location, headers=user.headers))["data"]
    return export


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_reimports_unchanged(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, fmt: str
) -> None:
    _catalog_worth_exporting(app)
    before = catalog(app)
    export = _export(client, staff, run_jobs, format=fmt)
    assert export["status"] == "succeeded", export
    assert (export["format"], export["total_rows"]) == (fmt, 3)
    content = _content(app, client, staff, export)
    if fmt == "csv":
        table = list(csv.DictReader(io.StringIO(content.decode())))
        assert ",".join(table[0].keys()) == HEADER
        assert [row["sku"] for row in table] == ["CUP-3", "LAMP-2", "MUG-1"]
        assert table[1]["name"] == "'=Lamp"  # no spreadsheet runs it; the import below takes the ' away
        assert table[2]["categories"] == "garden|kitchen"
    else:
        rows = json.loads(content)
        assert [row["sku"] for row in rows] == ["CUP-3", "LAMP-2", "MUG-1"]
        assert rows[1]["compare_at_price"] == "25.50" and rows[1]["is_active"] is False
    upload_id = export["upload_id"]
    assert upload_id
    again = run_import(client, staff, run_jobs, content, f"export.{fmt}")
    assert counts(again) == (0, 0, 3, 0), again
    assert catalog(app) == before


def test_an_export_takes_the_list_filters(app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs) -> None:
    _catalog_worth_exporting(app)
    export = _export(client, staff, run_jobs, category="kitchen")
    content = _content(app, client, staff, export)
    assert [row["sku"] for row in csv.DictReader(io.StringIO(content.decode()))] == ["MUG-1"]
    export = _export(client, staff, run_jobs, min_price="1.00", is_active=True)
    content = _content(app, client, staff, export)
    assert [row["sku"] for row in csv.DictReader(io.StringIO(content.decode()))] == ["MUG-1"]
    bad = client.post(EXPORTS, json={"format": "xml"}, headers=staff.headers)
    assert bad.status_code == 422


def test_exports_are_staff_only(app: Flask, client: FlaskClient, customer: AuthedUser) -> None:
    assert client.post(EXPORTS, json={}, headers=customer.headers).status_code == 403


def test_the_command_line_export_reimports_unchanged(app: Flask, tmp_path: Path) -> None:
    _catalog_worth_exporting(app)
    path = tmp_path / "catalog.json"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["export-products", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "Exported 3 products" in result.output
    result = runner.invoke(args=["import-products", str(path)])
    assert result.exit_code == 0, result.output
    assert "0 created, 0 updated, 3 unchanged, 0 rejected" in result.output


def test_an_export_that_runs_out_of_time_fails_at_once_with_its_reason(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As an import: a try that ran out of time is not retried (another would take as long
    again, while the export showed ``running`` for most of an hour)."""
    _catalog_worth_exporting(app)

    def too_slow(**_: Any) -> None:
        raise JobTimeoutException("Task exceeded maximum timeout value (2 seconds)")

    monkeypatch.setattr(exports, "save_generated", too_slow)
    export = _export(client, staff, run_jobs)
    assert export["status"] == "failed", export
    assert "took longer than" in export["failure_reason"] and "IMPORT_JOB_TIMEOUT" in export["failure_reason"]


@pytest.mark.services  # PostgreSQL: one snapshot for the whole export
def test_an_export_is_the_catalog_at_one_moment_whatever_changes_while_it_runs(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows come from one statement and their categories from others, chunk by chunk:
    a change committed in between (a product's categories taken away) is not half in it."""
    import sqlalchemy as sa

    from app.db import db
    from app.products.models import product_categories

    _catalog_worth_exporting(app)
    categories_of = exports.queries.categories_of

    def after_a_concurrent_change(product_ids: Any) -> Any:
        with db.engine.begin() as other:  # another request, committed while the export runs
            other.execute(sa.delete(product_categories))
        return categories_of(product_ids)

    monkeypatch.setattr(exports.queries, "categories_of", after_a_concurrent_change)
    export = _export(client, staff, run_jobs)
    rows = {row["sku"]: row for row in csv.DictReader(io.StringIO(_content(app, client, staff, export).decode()))}
    assert "kitchen" in rows["MUG-1"]["categories"] and "garden" in rows["MUG-1"]["categories"]


def test_an_export_of_what_changed_since_a_time(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    """``updated_after`` as on GET /products: an incremental export (kept with the export
    as text, read back as a time when the job runs)."""
    make_product(app, sku="OLD-1", name="Old")
    changed = make_product(app, sku="NEW-2", name="New")
    since = json_of(client.get(f"/api/v1/products/{changed}", headers=staff.headers))["data"]["updated_at"]
    response = client.post(EXPORTS, json={"format": "json", "updated_after": since}, headers=staff.headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    run_jobs()
    export = json_of(client.get(response.headers["Location"], headers=staff.headers))["data"]
    assert (export["status"], export["total_rows"]) == ("succeeded", 1)
