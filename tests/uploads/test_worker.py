"""A real worker process (``python worker.py``) on the media queue, killed mid-job.

``kill -9`` of the work-horse running the image job (what the kernel's OOM killer does to
a process decoding a huge image): the worker sees its horse die, RQ records the failure
and, the job having retries left, schedules it again; the next run starts over from the
received file and the upload ends ready.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from rq.job import Job

from app.extensions import redis_queues
from app.storage import FileStorage, S3Storage, Storage
from app.uploads.receiving import job_id_for
from tests.conftest import _service_environ
from tests.factories import AuthedUser
from tests.support.processes import poll_until, rq_worker, work_horses
from tests.uploads.support import created, get_upload, post_upload, stored

pytestmark = pytest.mark.services


def _slow_image() -> bytes:
    """36 megapixels that compress to almost nothing: seconds of decoding and re-encoding."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((6000, 6000)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def _storage_environ(storage: Storage) -> dict[str, str]:
    if isinstance(storage, FileStorage):
        return {"STORAGE_URL": f"file://{storage.root}"}
    assert isinstance(storage, S3Storage)
    return {"STORAGE_URL": f"s3://{storage.bucket}/{storage.prefix}", "S3_ENDPOINT_URL": storage.endpoint_url or ""}


@pytest.fixture
def worker(storage: Storage, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python worker.py`` on our PostgreSQL, Redis and storage; its output in worker.log."""
    env = {**_service_environ(), **_storage_environ(storage)}
    with rq_worker(env, tmp_path / "worker.log", name=f"kill-test-{uuid.uuid4().hex[:8]}") as process:
        yield process


def test_an_image_job_killed_mid_run_is_retried_and_ends_ready(
    app: Flask,
    client: FlaskClient,
    storage: Storage,
    staff: AuthedUser,
    worker: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    upload = created(post_upload(client, staff, _slow_image(), "gradient.png", "product_image"))
    assert upload["status"] == "processing"
    with app.app_context():
        job_id = job_id_for(uuid.UUID(upload["id"]))
        connection = redis_queues.connection

        def started() -> bool:
            return Job.fetch(job_id, connection=connection).get_status() == "started"

        poll_until(started, timeout=60, what="the job to start")
        horse = poll_until(lambda: work_horses(worker.pid), timeout=10, what="the work-horse")
        assert isinstance(horse, set) and len(horse) == 1
        time.sleep(0.5)  # well inside the seconds the image takes
        os.kill(horse.pop(), signal.SIGKILL)

        def retried() -> bool:
            job = Job.fetch(job_id, connection=connection)
            return job.retries_left is not None and job.retries_left < 5

        poll_until(retried, timeout=30, what="RQ to record the killed run")
    assert "Work-horse terminated unexpectedly" in (tmp_path / "worker.log").read_text()

    def ready() -> bool:
        return get_upload(client, staff, upload["id"])["status"] == "ready"

    poll_until(ready, timeout=90, what="the retried job to finish")
    done = get_upload(client, staff, upload["id"])
    assert (done["width"], done["height"]) == (6000, 6000)
    assert stored(storage) == sorted(f"{upload['id']}/{v}" for v in ("image", "medium", "small"))
