"""Imports end to end through HTTP: rows in, exact counts and errors out, the catalog right."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq.job import Job

from app.extensions import redis_queues
from app.products.transfer.models import ProductImport
from app.uploads.checks import SNIFF_BYTES, sniff
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.imports.support import (
    IMPORTS,
    catalog,
    counts,
    csv_file,
    errors_of,
    get_import,
    run_import,
    start,
    upload_import,
    without_identity,
)
from tests.products.builders import PRODUCTS, make_category, make_product
from tests.support.mailbox import Mailbox
from tests.uploads.support import created, post_upload

Jobs = Callable[[], int]

MIXED = csv_file(
    "MUG-1,Mug,A white mug,9.99,,10,2,,true,",  # line 2: fine
    "LAMP-2,Lamp,,-1,,5,,,,",  # line 3: negative price
    "BAD SKU,Thing,,1.00,,1,,,,",  # line 4: invalid SKU
    'VASE-3,"Vase,\nblue",,12.50,10.00,3,,,,',  # line 5 (spans 5-6): compare_at below price
    "PLATE-4,Plate,,4.00,,x,,,maybe,",  # line 7: stock and is_active both bad
    "BOWL-5,Bowl,,6.00,,8,,,false,",  # line 8: fine
)


def test_mixed_rows_are_written_or_rejected_row_by_row(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    run = run_import(client, staff, run_jobs, MIXED)
    assert run["status"] == "succeeded"
    assert (run["total_rows"], run["processed_rows"]) == (6, 6)
    assert counts(run) == (2, 0, 0, 4)
    rejected = {(row, field) for row, field, _message in errors_of(run)}
    assert rejected == {(3, "price"), (4, "sku"), (5, "compare_at_price"), (7, "stock"), (7, "is_active")}
    assert [e["sku"] for e in run["errors"]][:2] == ["LAMP-2", "BAD SKU"]
    assert [e["row"] for e in run["errors"]] == sorted(e["row"] for e in run["errors"])
    products = catalog(app)
    assert set(products) == {"MUG-1", "BOWL-5"}
    mug = products["MUG-1"]
    assert (mug["name"], mug["price"], mug["stock"], mug["low_stock_threshold"], mug["slug"]) == (
        "Mug",
        "9.99",
        10,
        2,
        "mug",
    )
    assert products["BOWL-5"]["is_active"] is False
    assert run["finished_at"] is not None and run["failure_reason"] is None
    assert run["requested_by"] == staff.id and run["mode"] == "upsert" and run["dry_run"] is False


def test_a_bom_does_not_rename_the_first_column(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    with_bom = run_import(client, staff, run_jobs, csv_file("MUG-1,Mug,,9.99,,1,,,,", bom=True))
    assert counts(with_bom) == (1, 0, 0, 0), with_bom
    without = run_import(client, staff, run_jobs, csv_file("MUG-1,Mug,,9.99,,1,,,,"))
    assert counts(without) == (0, 0, 1, 0)


def test_upsert_updates_changed_rows_and_leaves_identical_ones_alone(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    first = csv_file("MUG-1,Mug,,9.99,,10,,,,", "LAMP-2,Lamp,,19.99,,5,,,,")
    assert counts(run_import(client, staff, run_jobs, first)) == (2, 0, 0, 0)
    before = catalog(app)
    again = run_import(client, staff, run_jobs, first)
    assert counts(again) == (0, 0, 2, 0)
    assert catalog(app) == before  # versions and updated_at untouched

    changed = csv_file("MUG-1,Mug,,8.99,,10,,,,", "LAMP-2,Lamp,,19.99,,5,,,,", "CUP-3,Cup,,3.00,,1,,,,")
    assert counts(run_import(client, staff, run_jobs, changed)) == (1, 1, 1, 0)
    after = catalog(app)
    assert after["MUG-1"]["price"] == "8.99" and after["MUG-1"]["version"] == before["MUG-1"]["version"] + 1
    assert after["LAMP-2"] == before["LAMP-2"]


def test_create_mode_rejects_existing_skus_per_row(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    make_product(app, sku="MUG-1", name="Old mug", price=Decimal("5.00"))
    run = run_import(
        client, staff, run_jobs, csv_file("mug-1,Mug,,9.99,,1,,,,", "LAMP-2,Lamp,,1.00,,1,,,,"), mode="create"
    )
    assert counts(run) == (1, 0, 0, 1)
    [(row, field, _message)] = errors_of(run)
    assert (row, field) == (2, "sku")
    assert catalog(app)["MUG-1"]["name"] == "Old mug"


def test_an_absent_column_changes_nothing(app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs) -> None:
    kitchen = make_category(app, "kitchen")
    make_product(
        app, sku="MUG-1", name="Mug", price=Decimal("9.99"), stock=42, description="Keep me", category_ids=[kitchen]
    )
    run = run_import(client, staff, run_jobs, csv_file("MUG-1,Mug,12.00", header="sku,name,price"))
    assert counts(run) == (0, 1, 0, 0)
    mug = catalog(app)["MUG-1"]
    assert (mug["price"], mug["stock"], mug["description"], mug["categories"]) == ("12.00", 42, "Keep me", [kitchen])
    # A new product from the same columns takes the defaults of POST /products.
    run = run_import(client, staff, run_jobs, csv_file("CUP-2,Cup,3.00", header="sku,name,price"))
    cup = catalog(app)["CUP-2"]
    assert (cup["stock"], cup["low_stock_threshold"], cup["is_active"], cup["description"]) == (0, 5, True, "")


def test_dry_run_reports_exactly_what_a_real_run_does_and_writes_nothing(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    make_product(app, sku="MUG-1", name="Mug", price=Decimal("9.99"), stock=10)
    make_product(app, sku="LAMP-2", name="Lamp", price=Decimal("19.99"), stock=5)
    content = csv_file(
        "MUG-1,Mug,,9.99,,10,,,,", "LAMP-2,Lamp,,18.00,,5,,,,", "CUP-3,Cup,,3.00,,1,,,,", "X,Bad,,1,,1,,,,"
    )
    before = catalog(app)
    dry = run_import(client, staff, run_jobs, content, dry_run=True)
    assert dry["dry_run"] is True
    assert catalog(app) == before
    real = run_import(client, staff, run_jobs, content)
    assert counts(dry) == counts(real) == (1, 1, 1, 1)
    assert errors_of(dry) == errors_of(real)


def test_reject_all_writes_nothing_when_any_row_fails(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    make_product(app, sku="MUG-1", name="Mug", price=Decimal("9.99"))
    before = catalog(app)
    bad = csv_file("MUG-1,Mug,,1.00,,1,,,,", "CUP-2,Cup,,3.00,,1,,,,", "LAMP-3,Lamp,,oops,,1,,,,")
    run = run_import(client, staff, run_jobs, bad, error_policy="reject_all")
    # Nothing applied: the import failed, saying why (a poller reads status, not counts).
    assert (run["status"], run["failure_reason"]) == (
        "failed",
        "1 row(s) were rejected (see errors); with reject_all nothing was written.",
    )
    assert counts(run) == (0, 0, 0, 1)
    assert errors_of(run)[0][:2] == (4, "price")
    assert catalog(app) == before
    dry = run_import(client, staff, run_jobs, bad, error_policy="reject_all", dry_run=True)
    assert (dry["status"], dry["failure_reason"], counts(dry)) == (
        "failed",
        "1 row(s) were rejected (see errors); with reject_all a real run would write nothing.",
        (0, 0, 0, 1),
    )
    good = csv_file("MUG-1,Mug,,1.00,,1,,,,", "CUP-2,Cup,,3.00,,1,,,,")
    run = run_import(client, staff, run_jobs, good, error_policy="reject_all")
    assert (run["status"], run["failure_reason"], counts(run)) == ("succeeded", None, (1, 1, 0, 0))
    assert catalog(app)["MUG-1"]["price"] == "1.00"


def test_a_sku_twice_in_one_file_is_an_error_on_the_later_row(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    content = csv_file("MUG-1,Mug,,9.99,,1,,,,", "CUP-2,Cup,,3.00,,1,,,,", "mug-1,Other mug,,1.00,,1,,,,")
    run = run_import(client, staff, run_jobs, content)
    assert counts(run) == (2, 0, 0, 1)
    assert errors_of(run) == [(4, "sku", "The SKU is already in row 2 of this file.")]
    assert catalog(app)["MUG-1"]["name"] == "Mug"


def test_category_slugs_resolve_and_an_unknown_one_rejects_its_row(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    kitchen, garden = make_category(app, "kitchen"), make_category(app, "garden")
    content = csv_file("MUG-1,Mug,,9.99,,1,,kitchen|garden,,", "CUP-2,Cup,,3.00,,1,,kitchen|nowhere,,")
    run = run_import(client, staff, run_jobs, content)
    assert counts(run) == (1, 0, 0, 1)
    [(row, field, message)] = errors_of(run)
    assert (row, field) == (3, "categories") and "nowhere" in message
    assert catalog(app)["MUG-1"]["categories"] == sorted([kitchen, garden])


def test_json_rows_are_numbered_from_one(app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs) -> None:
    rows = [
        {"sku": "MUG-1", "name": "Mug", "price": "9.99", "stock": 3, "categories": []},
        {"sku": "CUP-2", "name": "", "price": "3.50"},
        {"sku": "BOWL-3", "name": "Bowl", "price": "2.00", "is_active": False},
    ]
    run = run_import(client, staff, run_jobs, json.dumps(rows).encode(), "products.json")
    assert counts(run) == (2, 0, 0, 1)
    assert [(row, field) for row, field, _ in errors_of(run)] == [(2, "name")]
    assert catalog(app)["BOWL-3"]["is_active"] is False


def test_json_text_no_one_can_store_is_an_error_on_its_row(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    """A JSON file can escape a NUL or a lone surrogate (the upload check reads bytes):
    such a value is refused on its row, as ``POST /products`` refuses it, and the other
    rows are written (it used to sink the whole import, retried for most of an hour)."""
    content = (
        b'[{"sku": "OK-1", "name": "Mug", "price": "1.00"},'
        b' {"sku": "NUL-2", "name": "a\\u0000b", "price": "1.00"},'
        b' {"sku": "NUL\\u0000-3", "name": "Cup", "price": "1.00"},'
        b' {"sku": "KEY-4", "name": "Bowl", "price": "1.00", "k\\u0000": 1},'
        b' {"sku": "CAT-5", "name": "Jug", "price": "1.00", "categories": ["a\\u0000"]}]'
    )
    run = run_import(client, staff, run_jobs, content, "products.json")
    assert run["status"] == "succeeded" and counts(run) == (1, 0, 0, 4), run
    problems = errors_of(run)
    assert [(row, field) for row, field, _ in problems] == [(2, "name"), (3, "sku"), (4, "row"), (5, "categories")]
    assert all("NUL" in message or "\\u0000" in message for _, _, message in problems), problems
    assert [e["sku"] for e in run["errors"]][:3] == ["NUL-2", "NUL\\u0000-3", "KEY-4"]
    assert set(catalog(app)) == {"OK-1"}


def test_a_json_escape_pair_is_one_character_and_escaped_backslashes_are_text(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    """What refusing lone surrogate escapes must not refuse: a pair (an emoji), and a
    backslash written before ``ud800`` (text, no escape)."""
    content = b'[{"sku": "EMOJI-1", "name": "Mug \\ud83d\\ude00", "price": "1.00", "description": "C:\\\\ud800"}]'
    run = run_import(client, staff, run_jobs, content, "products.json")
    assert counts(run) == (1, 0, 0, 0), run
    product = catalog(app)["EMOJI-1"]
    assert (product["name"], product["description"]) == ("Mug \U0001f600", "C:\\ud800")


def test_a_long_json_file_with_markup_in_its_text_is_taken_as_json(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    """libmagic reads 8 KiB: of a longer JSON array whose descriptions hold links and
    tables, it said text/html and the upload was refused (an export of such a catalog did
    not re-import). A file that begins as a JSON array is judged by its whole parse."""
    description = 'See <a href="https://example.com/manual">the manual</a>. <table><tr><td>1</td></tr></table>'
    rows = [{"sku": f"HTML-{n}", "name": f"Lamp {n}", "price": "1.00", "description": description} for n in range(120)]
    content = ("\n" + json.dumps(rows, indent=1)).encode()
    assert len(content) > 2 * SNIFF_BYTES and sniff(content) == "text/html"
    run = run_import(client, staff, run_jobs, content, "products.json")
    assert counts(run) == (120, 0, 0, 0), run
    assert catalog(app)["HTML-7"]["description"] == description


def test_errors_csv_lists_every_rejected_row_with_formulas_neutralised(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    content = csv_file(
        '=HYPERLINK("http://evil.example"),Mug,,1.00,,1,,,,',
        "+CUP,Cup,,-1,,1,,,,",
        "@SUM,Bowl,,x,,1,,,,",
        *[f"BAD {n},Item {n},,1.00,,1,,,," for n in range(150)],
    )
    run = run_import(client, staff, run_jobs, content)
    assert run["failed"] == 153 and len(run["errors"]) == 100  # the item shows the first 100
    response = client.get(f"{IMPORTS}/{run['id']}/errors.csv", headers=staff.headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == ["row", "sku", "field", "message"]
    assert len({cells[0] for cells in table[1:]}) == 153
    assert len(table) == 1 + 155  # "+CUP" and "@SUM" have a bad SKU and a bad price each
    for cells in table[1:]:
        for cell in cells:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cells
    assert table[1][1] == '\'=HYPERLINK("http://evil.example")'
    assert [int(cells[0]) for cells in table[1:]] == sorted(int(cells[0]) for cells in table[1:])


def test_the_requester_gets_a_summary_mail(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, mailbox: Mailbox
) -> None:
    run = run_import(client, staff, run_jobs, MIXED)
    run_jobs()  # the mail job
    [mail] = mailbox.to(staff.email)
    text = Mailbox.text_of(mail)
    assert "import" in mail["Subject"].lower()
    assert "Created: 2" in text and "Rejected: 4" in text
    assert f"/api/v1/products/imports/{run['id']}/errors.csv" in text  # absolute: PUBLIC_BASE_URL


def test_the_catalog_shows_an_import_at_once(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    make_product(app, sku="MUG-1", name="Mug", price=Decimal("9.99"), stock=1)
    assert [p["price"] for p in json_of(client.get(PRODUCTS))["data"]] == ["9.99"]  # now cached
    run_import(client, staff, run_jobs, csv_file("MUG-1,Mug,,7.50,,1,,,,", "CUP-2,Cup,,3.00,,1,,,,"))
    listed = json_of(client.get(PRODUCTS + "?sort=name"))["data"]
    assert [(p["sku"], p["price"]) for p in listed] == [("CUP-2", "3.00"), ("MUG-1", "7.50")]


def test_over_the_row_limit_the_import_fails_before_writing(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "IMPORT_MAX_ROWS", 3)
    content = csv_file(*[f"SKU-{n},Item {n},,1.00,,1,,,," for n in range(4)])
    run = run_import(client, staff, run_jobs, content)
    assert run["status"] == "failed"
    assert "IMPORT_MAX_ROWS" in run["failure_reason"] and "3" in run["failure_reason"]
    assert catalog(app) == {}


def test_a_file_with_an_unknown_column_fails_with_a_reason(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    run = run_import(client, staff, run_jobs, csv_file("MUG-1,Mug,9.99", header="sku,name,prise"))
    assert run["status"] == "failed"
    assert "prise" in run["failure_reason"]
    assert catalog(app) == {}


def test_small_batches_give_the_same_result_as_one(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = csv_file(*[f"SKU-{n},Same name,,1.00,,1,,,," for n in range(7)], "SKU-3,Again,,1.00,,1,,,,")
    monkeypatch.setitem(app.config, "IMPORT_BATCH_SIZE", 2)
    run = run_import(client, staff, run_jobs, content)
    assert counts(run) == (7, 0, 0, 1)
    assert errors_of(run) == [(9, "sku", "The SKU is already in row 5 of this file.")]
    slugs = sorted(row["slug"] for row in catalog(app).values())
    assert slugs == ["same-name", *(f"same-name-{n}" for n in range(2, 8))]


def test_the_request_is_checked_and_imports_are_staff_only(
    app: Flask, client: FlaskClient, staff: AuthedUser, customer: AuthedUser, run_jobs: Jobs
) -> None:
    upload_id = upload_import(client, staff, csv_file("MUG-1,Mug,,9.99,,1,,,,"))
    refused = client.post(IMPORTS, json={"upload_id": upload_id}, headers=customer.headers)
    assert refused.status_code == 403
    assert client.get(IMPORTS, headers=customer.headers).status_code == 403
    bad = client.post(IMPORTS, json={"upload_id": upload_id, "mode": "merge"}, headers=staff.headers)
    assert bad.status_code == 422 and json_of(bad)["error"]["details"][0]["field"] == "mode"
    image = created(post_upload(client, staff, _png(), "a.png", "product_image"))["id"]
    wrong = client.post(IMPORTS, json={"upload_id": image}, headers=staff.headers)
    assert wrong.status_code == 422 and json_of(wrong)["error"]["details"][0]["field"] == "upload_id"
    missing = client.get(f"{IMPORTS}/00000000-0000-4000-8000-000000000000", headers=staff.headers)
    assert missing.status_code == 404
    missing_csv = client.get(f"{IMPORTS}/00000000-0000-4000-8000-000000000000/errors.csv", headers=staff.headers)
    assert missing_csv.status_code == 404 and json_of(missing_csv)["error"]["code"] == "NOT_FOUND"


def test_imports_are_listed_newest_first_and_filtered_by_status(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    first = run_import(client, staff, run_jobs, csv_file("MUG-1,Mug,,9.99,,1,,,,"))
    second = run_import(client, staff, run_jobs, csv_file("MUG-1,Mug,9.99", header="sku,name,prise"))
    listed = json_of(client.get(IMPORTS, headers=staff.headers))
    assert [i["id"] for i in listed["data"]] == [second["id"], first["id"]]
    assert listed["meta"]["total"] == 2
    failed = json_of(client.get(IMPORTS + "?status=failed", headers=staff.headers))["data"]
    assert [i["id"] for i in failed] == [second["id"]]


def test_a_product_cannot_take_a_path_of_the_catalog_as_its_slug(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    response = client.post(
        PRODUCTS, json={"sku": "IMP-1", "name": "Imports", "price": "1.00", "stock": 1}, headers=staff.headers
    )
    assert response.status_code == 201
    assert json_of(response)["data"]["slug"] == "product-imports"
    chosen = client.post(
        PRODUCTS,
        json={"sku": "EXP-1", "name": "X", "slug": "exports", "price": "1.00", "stock": 1},
        headers=staff.headers,
    )
    assert chosen.status_code == 422


def test_the_command_line_runs_the_same_import(app: Flask, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "products.csv"
    path.write_bytes(MIXED)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import-products", str(path)])
    assert result.exit_code == 1, result.output
    assert "2 created, 0 updated, 0 unchanged, 4 rejected" in result.output
    assert set(catalog(app)) == {"MUG-1", "BOWL-5"}
    with app.app_context():
        from app.db import db

        [run] = db.session.query(ProductImport).all()
        assert (run.upload_id, run.requested_by_id, run.failed) == (None, None, 4)
    good = Path(str(tmp_path)) / "good.csv"
    good.write_bytes(csv_file("MUG-1,Mug,,9.99,,10,2,,true,"))
    result = runner.invoke(args=["import-products", str(good), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "0 created, 0 updated, 1 unchanged, 0 rejected" in result.output


def _png() -> bytes:
    from tests.uploads.support import png

    return png(10, 10)


def test_a_finished_import_reports_through_get(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    started = start(client, staff, upload_import(client, staff, csv_file("MUG-1,Mug,,9.99,,1,,,,")))
    assert started["status"] in {"queued", "succeeded"}  # in-process, the job ran before the answer
    run_jobs()
    finished = get_import(client, staff, started["id"])
    assert finished["status"] == "succeeded"
    # The dashboard shows the progress: the RQ job's meta mirrors the import's counts.
    with app.app_context():
        job = Job.fetch(f"import-{started['id']}", connection=redis_queues.connection)
        assert job.meta["progress"] == {
            "total_rows": 1,
            "processed_rows": 1,
            "created": 1,
            "updated": 0,
            "unchanged": 0,
            "failed": 0,
        }
    assert without_identity(catalog(app))["MUG-1"]["name"] == "Mug"


def test_a_stock_only_feed_updates_stock_and_leaves_the_rest_as_the_store_has_it(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    """An ERP's stock feed names SKUs and stock: existing products get their stock (names a
    merchant edited in the store stay); a SKU the store does not have cannot be created
    without a name and a price, and its row says so. The same in JSON."""
    make_product(app, sku="MUG-1", name="Mug as the store names it", price=Decimal("9.99"))
    make_product(app, sku="CUP-2", name="Cup", price=Decimal("3.00"))
    run = run_import(client, staff, run_jobs, b"sku,stock\nMUG-1,7\nNEW-3,5\n")
    assert (run["status"], counts(run)) == ("succeeded", (0, 1, 0, 1))
    assert errors_of(run) == [(3, "name", "Missing data for required field.")]
    products = catalog(app)
    assert (products["MUG-1"]["name"], products["MUG-1"]["price"], products["MUG-1"]["stock"]) == (
        "Mug as the store names it",
        "9.99",
        7,
    )
    assert set(products) == {"MUG-1", "CUP-2"}

    feed = b'[{"sku": "CUP-2", "stock": 4}, {"sku": "MUG-1", "price": "8.50", "name": ""}]'
    run = run_import(client, staff, run_jobs, feed, filename="stock.json")
    assert (run["status"], counts(run)) == ("succeeded", (0, 1, 0, 1))
    assert errors_of(run)[0][:2] == (2, "name")  # an empty name is refused, as POST /products refuses it
    assert catalog(app)["CUP-2"]["stock"] == 4


def test_every_error_names_a_valid_sku_as_stored_and_an_invalid_one_as_given(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    """One spelling per SKU in errors and errors.csv, whatever stage refused the row (the
    file's checks, the catalog's): as stored (upper case), as SKUs compare."""
    make_product(app, sku="MUG-1", name="Mug", price=Decimal("9.99"))
    content = csv_file(
        "cup-2,Cup,,oops,,1,,,,", "lamp-3,Lamp,,3.00,,1,,,,", "Lamp-3,Lamp,,3.00,,1,,,,", "bad sku,X,,1.00,,1,,,,"
    )
    run = run_import(client, staff, run_jobs, content, mode="create")
    create_run = run_import(client, staff, run_jobs, csv_file("mug-1,Mug,,9.99,,1,,,,"), mode="create")
    assert [(e["row"], e["sku"]) for e in run["errors"]] == [(2, "CUP-2"), (4, "LAMP-3"), (5, "bad sku")]
    assert [(e["row"], e["sku"], e["field"]) for e in create_run["errors"]] == [(2, "MUG-1", "sku")]
