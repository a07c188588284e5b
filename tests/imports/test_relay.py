"""Nothing is silently dropped: a run whose job was lost is queued again by the clock's
relay, and one that keeps dying is failed with a reason instead of looping forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from rq.timeouts import JobTimeoutException

from app.db import db, on_postgresql, utcnow
from app.jobs import PendingJob, enqueue_now
from app.products.transfer import importing, reading, relay, service, writing
from app.products.transfer.models import ProductImport
from app.storage import current_storage
from app.uploads.models import Upload
from tests.conftest import _service_environ
from tests.factories import AuthedUser
from tests.imports.support import catalog, csv_file, get_import, lost_import, run_import, upload_import
from tests.support.processes import ROOT, poll_until
from tests.support.rq_failures import failed_jobs, failed_on_its_last_try

Jobs = Callable[[], int]


def test_a_lost_import_is_queued_again_and_finishes(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    import_id = lost_import(app, upload_import(client, staff, csv_file("MUG-1,Mug,,9.99,,1,,,,")))
    with app.app_context():
        assert relay.relay() == {"requeued": 1, "failed": 0}
    run_jobs()
    assert get_import(client, staff, str(import_id))["status"] == "succeeded"
    assert set(catalog(app)) == {"MUG-1"}
    with app.app_context():
        assert relay.relay() == {"requeued": 0, "failed": 0}


def test_a_relayed_import_leaves_rqs_failed_registry(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    """Its worker killed on the job's last try, then relayed: the failure is handled, and
    no longer counts in ``rq_failed_jobs`` (it did, with its alert, for 30 days)."""
    upload_id = upload_import(client, staff, csv_file("MUG-1,Mug,,9.99,,1,,,,"))
    import_id = lost_import(app, upload_id, attempts=6, status="running")
    failed_on_its_last_try(app, service.IMPORT_QUEUE, service.import_job_id(import_id), service.RUN_IMPORT)
    assert failed_jobs(client, service.IMPORT_QUEUE) == 1
    with app.app_context():
        assert relay.relay() == {"requeued": 1, "failed": 0}
    assert failed_jobs(client, service.IMPORT_QUEUE) == 0
    run_jobs()
    assert get_import(client, staff, str(import_id))["status"] == "succeeded"


def test_an_import_that_keeps_dying_is_failed_with_a_reason(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    import_id = lost_import(
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
    import_id = lost_import(
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


FLASK = os.path.join(os.path.dirname(sys.executable), "flask")
COMMAND_ROWS = 8_000


def _command_file(path: Path) -> Path:
    path.write_bytes(
        csv_file(*(f"CLI-{n:05d},Product {n},,{n % 90 + 1}.50,,{n % 9},,,true," for n in range(COMMAND_ROWS)))
    )
    return path


def _quiet(app: Flask, import_id: uuid.UUID) -> None:
    """As the clock finds it: unmoved for longer than the relay's quiet time."""
    with app.app_context():
        # On SQLite no lock tells a stopped command from a live one: only a long quiet does.
        quiet_for = relay.QUIET_FOR if on_postgresql() else relay.COMMAND_QUIET_WITHOUT_LOCKS
        quiet = utcnow() - quiet_for - timedelta(seconds=5)
        db.session.execute(sa.update(ProductImport).where(ProductImport.id == import_id).values(updated_at=quiet))
        db.session.commit()


def _killed_command_import(app: Flask, path: Path) -> tuple[uuid.UUID, int]:
    """``flask import-products`` in a process of its own, killed (SIGKILL) once batches are
    written: its run, left ``running``, and the rows it had written."""
    env = {**_service_environ(), "FLASK_APP": "wsgi", "IMPORT_BATCH_SIZE": "200"}
    command = subprocess.Popen(
        [FLASK, "import-products", str(path)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def written() -> tuple[uuid.UUID, int] | None:
        with app.app_context():
            row = db.session.execute(sa.select(ProductImport.id, ProductImport.processed_rows)).first()
            db.session.rollback()
        return (row[0], row[1]) if row is not None and row[1] >= 1_000 else None

    try:
        poll_until(lambda: written() or command.poll() is not None, timeout=120, what="the command to write rows")
    finally:
        command.kill()
        command.wait(timeout=30)
    assert command.returncode == -signal.SIGKILL, "the command finished before it was killed: give it more rows"
    with app.app_context():
        run = db.session.execute(sa.select(ProductImport)).scalar_one()
        assert (run.status, run.upload_id, run.requested_by_id) == ("running", None, None)
        return run.id, run.processed_rows


def test_an_import_whose_command_was_killed_is_failed_saying_so_and_running_it_again_finishes_it(
    app: Flask, client: FlaskClient, staff: AuthedUser, tmp_path: Path
) -> None:
    path = _command_file(tmp_path / "big.csv")
    import_id, processed = _killed_command_import(app, path)
    assert len(catalog(app)) == processed < COMMAND_ROWS
    _quiet(app, import_id)
    with app.app_context():
        assert relay.relay() == {"requeued": 0, "failed": 1}  # never queued: no worker has its file
    run = get_import(client, staff, str(import_id))
    assert run["status"] == "failed"
    reason = run["failure_reason"]
    assert "deleted" not in reason and "upload" not in reason
    assert reason.startswith("The command running this import (flask import-products) stopped before it finished")
    assert f"{processed} of {COMMAND_ROWS} rows were read and {processed} products written" in reason
    assert "Run the command again on the same file to finish it" in reason
    assert "left unchanged" in reason
    with app.app_context():
        assert relay.relay() == {"requeued": 0, "failed": 0}

    # As the reason says: the same command again writes the rest and rewrites nothing.
    before = catalog(app)
    result = app.test_cli_runner().invoke(args=["import-products", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{COMMAND_ROWS - processed} created, 0 updated, {processed} unchanged, 0 rejected" in result.output
    after = catalog(app)
    assert len(after) == COMMAND_ROWS
    assert all(after[sku] == row for sku, row in before.items())


def _stopped_command_import(app: Flask, **values: Any) -> uuid.UUID:
    """A run of ``flask import-products`` whose process died: no upload, no requester."""
    with app.app_context():
        columns: dict[str, Any] = {
            "filename": "local.csv",
            "content_type": "text/csv",
            "mode": "upsert",
            "dry_run": False,
            "error_policy": "skip_invalid_rows",
            "status": "running",
            "total_rows": 150_000,
            "processed_rows": 24_000,
            "created": 23_990,
            "failed": 10,
            "attempts": 1,
        }
        run = ProductImport(**{**columns, **values})
        db.session.add(run)
        db.session.commit()
        return run.id


def test_a_command_import_relayed_by_the_previous_version_is_failed_by_the_worker_saying_why(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    # The previous relay queued such runs; the worker then said their file had been deleted.
    import_id = _stopped_command_import(app)
    with app.app_context():
        job = PendingJob(
            service.IMPORT_QUEUE, service.RUN_IMPORT, (str(import_id),), service.import_job_id(import_id), 5
        )
        assert enqueue_now(job)
    run_jobs()
    run = get_import(client, staff, str(import_id))
    assert run["status"] == "failed"
    assert run["failure_reason"] == (
        "The command running this import (flask import-products) stopped before it finished: 24000 of 150000 rows "
        "were read and 23990 products written (23990 created, 0 updated, 0 unchanged, 10 rejected). Run the command "
        "again on the same file to finish it: its rows already written are then left unchanged (nothing is written "
        "twice), the others written."
    )
    assert (run["processed_rows"], run["created"]) == (24_000, 23_990)  # what it did stays


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"mode": "create"}, "rejected as existing SKUs (--mode create)"),
        ({"dry_run": True, "created": 0}, "it was a dry run: nothing was written (24000 of 150000 rows checked)"),
        ({"error_policy": "reject_all", "created": 0}, "nothing was written (--reject-all writes every row at the end"),
    ],
)
def test_a_stopped_command_import_says_what_running_it_again_does(
    app: Flask, client: FlaskClient, staff: AuthedUser, values: dict[str, Any], says: str
) -> None:
    import_id = _stopped_command_import(app, **values)
    _quiet(app, import_id)
    with app.app_context():
        assert relay.relay() == {"requeued": 0, "failed": 1}
    assert says in get_import(client, staff, str(import_id))["failure_reason"]


@pytest.mark.services
def test_a_command_import_still_running_is_left_alone(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    # A batch slower than the relay's quiet time: the command still holds its import.
    import_id = _stopped_command_import(app)
    _quiet(app, import_id)
    with app.app_context(), importing._exclusive(import_id) as held:
        assert held
        assert relay.relay() == {"requeued": 0, "failed": 0}
    assert get_import(client, staff, str(import_id))["status"] == "running"


def test_without_postgresql_a_command_import_is_ended_only_after_a_long_quiet(
    app: Flask, client: FlaskClient, staff: AuthedUser
) -> None:
    """On SQLite no advisory lock tells a stopped command from one still writing (a long
    final write): a run quiet for the relay's usual minutes is left alone there. PostgreSQL
    knows by the lock (free here): it ends the run."""
    import_id = _stopped_command_import(app)
    with app.app_context():
        recent = utcnow() - relay.QUIET_FOR - timedelta(minutes=10)
        db.session.execute(sa.update(ProductImport).where(ProductImport.id == import_id).values(updated_at=recent))
        db.session.commit()
        ended = relay.relay()
        postgresql = on_postgresql()
    status = get_import(client, staff, str(import_id))["status"]
    if postgresql:
        assert ended == {"requeued": 0, "failed": 1} and status == "failed"
    else:
        assert ended == {"requeued": 0, "failed": 0} and status == "running"
