"""An import survives its worker: ``kill -9`` mid-run resumes from the checkpoint, and a
second run of the same import at the same time is refused, never doubles anything.

Real PostgreSQL, Redis and ``python worker.py`` (the services run)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db
from app.products.transfer import importing
from app.products.transfer.models import ProductImport, ProductImportError
from app.storage import current_storage
from app.uploads.models import Upload
from tests.conftest import _service_environ
from tests.factories import AuthedUser
from tests.imports.support import HEADER, catalog, get_import, start, upload_import
from tests.support.processes import poll_until, rq_worker, work_horses

pytestmark = pytest.mark.services
ROWS = 60_000
BAD_EVERY = 997  # a rejected row now and then, so that errors must not double either


def _file(rows: int = ROWS) -> bytes:
    lines = [HEADER]
    for n in range(1, rows + 1):
        price = "oops" if n % BAD_EVERY == 0 else f"{n % 500}.{n % 100:02d}"
        lines.append(f"SKU-{n:06d},Product number {n},Made for the resume test,{price},,{n % 7},,,true,")
    return ("\n".join(lines) + "\n").encode()


def _expect_clean_catalog(app: Flask, rows: int = ROWS) -> None:
    products = catalog(app)
    good = [n for n in range(1, rows + 1) if n % BAD_EVERY]
    assert len(products) == len(good)
    assert {row["version"] for row in products.values()} == {1}  # nothing written twice
    assert len({row["slug"] for row in products.values()}) == len(good)
    sample = products[f"SKU-{good[-1]:06d}"]
    assert sample["slug"] == f"product-number-{good[-1]}"
    with app.app_context():
        errors = db.session.execute(sa.select(ProductImportError.row, ProductImportError.field)).all()
    assert sorted(errors) == [(n + 1, "price") for n in range(1, rows + 1) if n % BAD_EVERY == 0]


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **_service_environ(),
        "IMPORT_BATCH_SIZE": "2000",
        "STORAGE_URL": os.environ.get("STORAGE_URL", "file://" + os.environ["STOREFRONT_TEST_STORAGE"]),
    }
    with rq_worker(env, tmp_path / "worker.log", name=f"import-kill-{uuid.uuid4().hex[:8]}") as process:
        yield process


def _processed(app: Flask, import_id: str) -> int:
    with app.app_context():
        value = db.session.scalar(
            sa.select(ProductImport.processed_rows).where(ProductImport.id == uuid.UUID(import_id))
        )
        db.session.rollback()
        return int(value or 0)


def _killed_mid_run(app: Flask, worker: subprocess.Popen[bytes], import_id: str) -> None:
    """Its worker's work horse killed once the import's first batch has committed."""
    poll_until(lambda: _processed(app, import_id) >= 2000, timeout=120, what="the first batch to commit")
    horse = poll_until(lambda: work_horses(worker.pid), timeout=10, what="the work-horse")
    assert isinstance(horse, set) and len(horse) == 1
    os.kill(horse.pop(), signal.SIGKILL)
    assert _processed(app, import_id) < ROWS, "the import finished before it could be killed: make the file longer"


def test_an_import_killed_mid_run_resumes_to_the_catalog_of_a_clean_run(
    app: Flask, client: FlaskClient, staff: AuthedUser, worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    started = start(client, staff, upload_import(client, staff, _file()))
    import_id = started["id"]
    _killed_mid_run(app, worker, import_id)

    def finished() -> dict[str, Any] | None:
        run = get_import(client, staff, import_id)
        return run if run["status"] in {"succeeded", "failed"} else None

    run = poll_until(finished, timeout=240, what="the retried import to finish")
    assert isinstance(run, dict)
    assert "Work-horse terminated unexpectedly" in (tmp_path / "worker.log").read_text()
    assert run["status"] == "succeeded", run
    bad = ROWS // BAD_EVERY
    assert (run["created"], run["updated"], run["unchanged"], run["failed"]) == (ROWS - bad, 0, 0, bad)
    assert run["processed_rows"] == run["total_rows"] == ROWS
    with app.app_context():
        attempts = db.session.get(ProductImport, uuid.UUID(import_id))
        assert attempts is not None and attempts.attempts == 2
    _expect_clean_catalog(app)


def test_an_import_requested_while_an_earlier_one_was_killed_waits_for_it_then_wins(
    app: Flask, client: FlaskClient, staff: AuthedUser, worker: subprocess.Popen[bytes]
) -> None:
    """The earlier import resumes (RQ retries it) after the later one reached the worker:
    the later one waits, then runs; every product ends as the later file says, none as the
    earlier one's resumed rows would have left it."""
    earlier = start(client, staff, upload_import(client, staff, _file()))["id"]
    _killed_mid_run(app, worker, earlier)
    rows = [HEADER] + [
        f"SKU-{n:06d},Product number {n},From the later file,7.00,,3,,,true," for n in range(1, ROWS + 1)
    ]
    later = start(client, staff, upload_import(client, staff, ("\n".join(rows) + "\n").encode()))["id"]

    def finished(import_id: str) -> dict[str, Any] | None:
        run = get_import(client, staff, import_id)
        return run if run["status"] in {"succeeded", "failed"} else None

    then = poll_until(lambda: finished(later), timeout=400, what="the later import to finish")
    first = finished(earlier)
    assert isinstance(then, dict) and isinstance(first, dict)
    assert first["status"] == then["status"] == "succeeded", (first, then)
    assert first["finished_at"] <= then["started_at"]
    bad = ROWS // BAD_EVERY
    assert (then["created"], then["updated"], then["failed"]) == (bad, ROWS - bad, 0)
    products = catalog(app)
    assert len(products) == ROWS
    assert {(p["description"], p["price"], p["stock"]) for p in products.values()} == {
        ("From the later file", "7.00", 3)
    }


def test_a_second_run_of_the_same_import_at_once_is_refused(
    app: Flask, client: FlaskClient, staff: AuthedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 20_000
    upload_id = upload_import(client, staff, _file(rows))
    monkeypatch.setitem(app.config, "IMPORT_BATCH_SIZE", 1000)
    with app.app_context():
        upload = db.session.get(Upload, uuid.UUID(upload_id))
        assert upload is not None
        run = ProductImport(
            upload_id=upload.id,
            filename="same.csv",
            content_type="text/csv",
            mode="upsert",
            dry_run=False,
            error_policy="skip_invalid_rows",
        )
        db.session.add(run)
        db.session.commit()
        import_id, key = run.id, upload.key(upload.content_variant)
    outcomes: dict[str, object] = {}

    def run_in_thread(name: str) -> None:
        with app.app_context():
            try:
                outcomes[name] = importing.run_import(import_id, open_file=lambda: current_storage().open(key))
            except importing.ImportBusy as exc:
                outcomes[name] = exc

    first = threading.Thread(target=run_in_thread, args=("first",))
    first.start()
    poll_until(lambda: _processed(app, str(import_id)) >= 1000, timeout=60, what="the first run to be under way")
    run_in_thread("second")
    first.join(timeout=120)
    assert outcomes["first"] == "succeeded"
    assert isinstance(outcomes["second"], importing.ImportBusy)
    # Once the first is done, another run finds it finished and does nothing.
    with app.app_context():
        assert importing.run_import(import_id, open_file=lambda: current_storage().open(key)) == "succeeded"
    _expect_clean_catalog(app, rows)
    with app.app_context():
        finished = db.session.get(ProductImport, import_id)
        assert finished is not None
        assert (finished.created, finished.failed, finished.processed_rows) == (
            rows - rows // BAD_EVERY,
            rows // BAD_EVERY,
            rows,
        )
