"""The clock's upkeep: uploads never completed are purged after a day; stuck images end failed."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db, utcnow
from app.storage import FileStorage, Storage
from app.uploads import processing, receiving, service
from app.uploads.models import Purpose, Upload, Variant, object_key
from app.uploads.receiving import PROCESS_IMAGE, job_id_for
from config import ConfigError, ProductionConfig, get_config
from tests.conftest import _service_environ, json_of
from tests.core.test_config import PRODUCTION_ENV
from tests.factories import AuthedUser
from tests.support.processes import ROOT
from tests.support.rq_failures import failed_jobs, failed_on_its_last_try
from tests.uploads.support import CSV, UPLOADS, created, png, post_upload, rows, send_to_target, start_direct, stored


def _age(app: Flask, upload_id: str, hours: float) -> None:
    with app.app_context():
        then = utcnow() - timedelta(hours=hours)
        db.session.execute(
            sa.update(Upload).where(Upload.id == uuid.UUID(upload_id)).values(created_at=then, updated_at=then)
        )
        db.session.commit()


def test_uploads_never_completed_are_purged_after_a_day(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser
) -> None:
    old = created(start_direct(client, staff, purpose="import", size=len(CSV)))
    send_to_target(app, client, old["target"], CSV)  # sent, never completed
    recent = created(start_direct(client, staff, purpose="import", size=len(CSV)))["upload"]["id"]
    done = created(post_upload(client, staff, CSV, "c.csv", "import"))["id"]
    _age(app, old["upload"]["id"], 25)
    _age(app, done, 25)
    with app.app_context():
        result = processing.maintain()
    assert result["purged"] == 1
    assert sorted(str(u.id) for u in rows(app)) == sorted([recent, done])
    assert stored(storage) == [f"{done}/file"]


@pytest.mark.services
def test_an_upload_completed_while_the_purge_runs_is_kept(app: Flask, client: FlaskClient, staff: AuthedUser) -> None:
    """The purge picks a day-old upload still awaiting its file while ``complete`` (which
    holds the row) is finishing it: the purge re-checks the row once the lock is free and
    leaves the now-ready upload alone (it used to delete it under the client's feet)."""
    upload = created(start_direct(client, staff, purpose="import", size=len(CSV)))["upload"]["id"]
    _age(app, upload, 25)
    with app.app_context():
        engine = db.engine
    completing = engine.connect()
    transaction = completing.begin()
    completing.execute(sa.update(Upload).where(Upload.id == uuid.UUID(upload)).values(status="ready"))
    result: dict[str, int] = {}

    def purge() -> None:
        with app.app_context():
            result.update(processing.maintain())

    purger = threading.Thread(target=purge)
    purger.start()
    purger.join(timeout=1)
    assert purger.is_alive()  # waiting for the row, not deciding on what it read before
    transaction.commit()
    completing.close()
    purger.join(timeout=30)
    assert result["purged"] == 0
    assert [str(u.id) for u in rows(app)] == [upload]


def _lost_image(app: Flask, client: FlaskClient, staff: AuthedUser) -> str:
    """A product image left processing with no job: enqueued where no worker looks, then lost."""
    from app.extensions import redis_queues

    with app.app_context():
        queue = redis_queues.queue("media")
        saved = queue._is_async
        queue._is_async = True
    try:
        upload_id: str = created(post_upload(client, staff, png(), "p.png", "product_image"))["id"]
    finally:
        queue._is_async = saved
    with app.app_context():
        redis_queues.connection.flushdb()  # (Redis lost it)
    return upload_id


def test_an_image_stuck_in_processing_is_queued_again_then_failed(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    upload_id = _lost_image(app, client, staff)
    _age(app, upload_id, 1)
    with app.app_context():
        assert processing.maintain()["relayed"] == 1
    run_jobs()
    assert json_of(client.get(f"{UPLOADS}/{upload_id}", headers=staff.headers))["data"]["status"] == "ready"

    stuck = created(post_upload(client, staff, png(), "q.png", "product_image"))["id"]
    with app.app_context():
        db.session.execute(sa.update(Upload).where(Upload.id == uuid.UUID(stuck)).values(status="processing"))
        db.session.commit()
    _age(app, stuck, 25)
    with app.app_context():
        assert processing.maintain()["failed"] == 1
    failed = json_of(client.get(f"{UPLOADS}/{stuck}", headers=staff.headers))["data"]
    assert failed["status"] == "failed" and "in time" in failed["failure_reason"]
    assert not [key for key in stored(file_storage) if key.startswith(stuck)]


def test_a_relayed_image_job_leaves_rqs_failed_registry(
    app: Flask, client: FlaskClient, file_storage: Storage, staff: AuthedUser, run_jobs: Callable[[], int]
) -> None:
    """Relayed, its failure is handled: left in the registry it kept ``rq_failed_jobs`` up
    (and its alert firing) for the registry's 30 days."""
    upload_id = _lost_image(app, client, staff)
    failed_on_its_last_try(app, "media", job_id_for(uuid.UUID(upload_id)), PROCESS_IMAGE)
    assert failed_jobs(client, "media") == 1
    _age(app, upload_id, 1)
    with app.app_context():
        assert processing.maintain()["relayed"] == 1
    assert failed_jobs(client, "media") == 0
    run_jobs()
    assert json_of(client.get(f"{UPLOADS}/{upload_id}", headers=staff.headers))["data"]["status"] == "ready"


# Runs the image job on each upload given, that many times, each run in a work-horse forked
# as RQ's worker forks one, and killed as the OOM killer kills it: none of our code runs after.
_KILLED_EVERY_RUN = """
import os, signal, sys, uuid
from app import create_app
from app.db import db
from app.uploads import images, processing

def killed(data):
    os.kill(os.getpid(), signal.SIGKILL)

images.process = killed
app = create_app()
runs, upload_ids = int(sys.argv[1]), sys.argv[2:]
for upload_id in upload_ids:
    for _ in range(runs):
        horse = os.fork()
        if horse == 0:
            with app.app_context():
                db.engine.dispose(close=False)  # the horse's own connections
                processing.process_image(uuid.UUID(upload_id))
            os._exit(0)
        _, status = os.waitpid(horse, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
"""


def test_an_image_whose_job_is_killed_every_run_ends_failed_instead_of_relayed_forever(
    app: Flask, client: FlaskClient, file_storage: FileStorage, staff: AuthedUser
) -> None:
    relayed, retried = _lost_image(app, client, staff), _lost_image(app, client, staff)
    env = {**_service_environ(), "STORAGE_URL": f"file://{file_storage.root}"}
    command = [sys.executable, "-c", _KILLED_EVERY_RUN, str(processing.MAX_ATTEMPTS), relayed, retried]
    subprocess.run(command, env=env, cwd=ROOT, check=True, timeout=120)

    def seen(upload_id: str) -> dict[str, object]:
        data: dict[str, object] = json_of(client.get(f"{UPLOADS}/{upload_id}", headers=staff.headers))["data"]
        return data

    assert seen(relayed)["status"] == seen(retried)["status"] == "processing"  # nothing of ours ran after
    reason = f"The image could not be processed (its processing stopped {processing.MAX_ATTEMPTS} times)"
    # The clock finds one without a job: it is failed, not queued again.
    _age(app, relayed, 1)
    with app.app_context():
        result = processing.maintain()
    assert (result["relayed"], result["failed"]) == (0, 1)
    # RQ runs the other once more (a try it had left): that run gives up before working.
    with app.app_context():
        assert processing.process_image(uuid.UUID(retried)) == "failed"
    for upload_id in (relayed, retried):
        failed = seen(upload_id)
        assert failed["status"] == "failed" and str(failed["failure_reason"]).startswith(reason)
    assert stored(file_storage) == []


def test_a_generated_file_is_stored_ready_and_readable(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser
) -> None:
    with app.app_context():
        upload = receiving.save_generated(
            owner_id=uuid.UUID(staff.id),
            purpose=Purpose.EXPORT,
            filename="products.csv",
            content_type="text/csv",
            source=io.BytesIO(CSV),
        )
        with closing(service.open_file(upload)) as stream:
            assert stream.read() == CSV
        key = object_key(upload.id, Variant.FILE)
    body = json_of(client.get(f"{UPLOADS}?purpose=export", headers=staff.headers))["data"]
    assert [(u["status"], u["size"], u["content_type"]) for u in body] == [("ready", len(CSV), "text/csv")]
    assert stored(storage) == [key]


def test_production_keeps_uploads_on_s3_unless_told_otherwise() -> None:
    env = {**PRODUCTION_ENV, "STORAGE_URL": "file:///var/uploads"}
    with pytest.raises(ConfigError, match="STORAGE_URL must be s3://"):
        ProductionConfig(env)
    assert ProductionConfig({**env, "ALLOW_LOCAL_STORAGE": "1"}).STORAGE_URL == "file:///var/uploads"
    assert ProductionConfig(PRODUCTION_ENV).STORAGE_URL.startswith("s3://")
    without = {k: v for k, v in PRODUCTION_ENV.items() if k != "STORAGE_URL"}
    with pytest.raises(ConfigError, match="STORAGE_URL"):
        ProductionConfig(without)


def test_upload_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="STORAGE_URL"):
        get_config(environ={"STORAGE_URL": "ftp://files.example/x"})
    with pytest.raises(ConfigError, match="UPLOAD_DOWNLOAD_SECONDS"):
        get_config(environ={"UPLOAD_DOWNLOAD_SECONDS": "600"})
    config = get_config(environ={})
    assert (config.UPLOAD_IMAGE_MAX_BYTES, config.UPLOAD_IMPORT_MAX_BYTES) == (10 * 1024 * 1024, 50 * 1024 * 1024)
    assert config.STORAGE_URL.startswith("file://") and config.STORAGE_URL.endswith("instance/uploads")
