"""Nothing is silently dropped: a run whose job was lost is queued again by the clock's
relay, and one that keeps dying is failed with a reason instead of looping forever."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from rq.timeouts import JobTimeoutException

from app.db import db, utcnow
from app.products.transfer import importing, reading, relay, writing
from app.products.transfer.models import ProductImport
from app.storage import current_storage
from app.uploads.models import Upload
from tests.factories import AuthedUser
from tests.imports.support import catalog, csv_file, get_import, run_import, upload_import

Jobs = Callable[[], int]


def _lost_import(app: Flask, upload_id: str, *, attempts: int = 0, status: str = "queued") -> uuid.UUID:
    """An import row whose job never reached Redis (or died with its worker), quiet for a while."""
    with app.app_context():
        run = ProductImport(
            upload_id=uuid.UUID(upload_id),
            filename="lost.csv",
            content_type="text/csv",
            mode="upsert",
            dry_run=False,
            error_policy="skip_invalid_rows",
            status=status,
            attempts=attempts,
        )
        db.session.add(run)
        db.session.commit()
        quiet = utcnow() - relay.QUIET_FOR - timedelta(seconds=5)
        db.session.execute(sa.update(ProductImport).where(ProductImport.id == run.id).values(updated_at=quiet))
        db.session.commit()
        return run.id


def test_a_lost_import_is_queued_again_and_finishes(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    import_id = _lost_import(app, upload_import(client, staff, csv_file("MUG-1,Mug,,9.99,,1,,,,")))
    with app.app_context():
        assert relay.relay() == {"requeued": 1, "failed": 0}
    run_jobs()
    assert get_import(client, staff, str(import_id))["status"] == "succeeded"
    assert set(catalog(app)) == {"MUG-1"}
    with app.app_context():
        assert relay.relay() == {"requeued": 0, "failed": 0}


def test_an_import_that_keeps_dying_is_failed_with_a_reason(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    import_id = _lost_import(
        app, upload_import(client, staff, csv_file("MUG-1,Mug,,9.99,,1,,,,")), attempts=8, status="running"
    )
    with app.app_context():
        assert relay.relay() == {"requeued": 0, "failed": 1}
    run = get_import(client, staff, str(import_id))
    assert run["status"] == "failed" and "8 times" in run["failure_reason"]
    assert catalog(app) == {}


def test_an_import_over_its_time_fails_cleanly(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read_rows = reading.read_rows
    calls = []

    def slow_read_rows(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) > 1:  # the counting pass passes; the writing pass runs out of time
            raise JobTimeoutException("Task exceeded maximum timeout value (3600 seconds)")
        return real_read_rows(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reading, "read_rows", slow_read_rows)
    run = run_import(client, staff, run_jobs, csv_file("MUG-1,Mug,,9.99,,1,,,,"))
    assert run["status"] == "failed"
    assert "IMPORT_JOB_TIMEOUT" in run["failure_reason"]
    assert catalog(app) == {}


def test_a_run_whose_checkpoint_another_run_moved_stops_without_ending_the_import(
    app: Flask, client: FlaskClient, staff: AuthedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conditional checkpoint: if another runner advanced the import meanwhile, this one
    undoes its batch and stops; it neither doubles rows nor marks the other's import failed."""
    import_id = _lost_import(
        app, upload_import(client, staff, csv_file("MUG-1,Mug,,9.99,,1,,,,", "CUP-2,Cup,,3.00,,1,,,,"))
    )
    monkeypatch.setitem(app.config, "IMPORT_BATCH_SIZE", 1)
    real_write_batch = writing.write_batch
    calls: list[int] = []

    def write_batch_then_be_overtaken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # meanwhile, another run commits the same batch
            with db.engine.begin() as other:
                other.execute(sa.update(ProductImport).where(ProductImport.id == import_id).values(processed_rows=2))
        return real_write_batch(*args, **kwargs)

    monkeypatch.setattr(writing, "write_batch", write_batch_then_be_overtaken)
    with app.app_context():
        run = db.session.get(ProductImport, import_id)
        assert run is not None and run.upload_id is not None
        upload = db.session.get(Upload, run.upload_id)
        assert upload is not None
        key = upload.key(upload.content_variant)
        with pytest.raises(importing.ImportBusy):
            importing.run_import(import_id, open_file=lambda: current_storage().open(key))
        db.session.remove()
    assert get_import(client, staff, str(import_id))["status"] == "running"
    assert set(catalog(app)) == {"MUG-1"}  # the first batch; the overtaken one was undone
