"""The media job's work, and the upkeep of uploads nobody finished.

``process_image`` is idempotent: it reads the received file (``file``), writes the clean
image and thumbnails under their own keys, marks the upload ready, and only then removes
the received file. A run killed anywhere starts over from the received file; a run after
success finds the upload ready and only tidies. A file that is not a usable image ends
``failed`` with a reason (no retry can change that); anything else (storage or database
down) propagates, so RQ retries with backoff and keeps the failure visible.

A run killed outright (the OOM killer, kill -9) runs none of our code: each run counts
itself in ``attempts``, committed before it works, and after ``MAX_ATTEMPTS`` starts the
upload is failed (by the next run, or by the upkeep instead of queueing it again), so a
file that kills its worker every time is not retried until it expires.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from contextlib import closing
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.db import db, utcnow
from app.jobs import PendingJob, clear_failure, enqueue_now, final_attempt, has_live_job
from app.storage import FileStorage, ObjectNotFound, current_storage
from app.uploads import images
from app.uploads.models import FAILURE_REASON_MAX, THUMBNAILS, Purpose, Status, Upload, Variant, all_keys, object_key
from app.uploads.receiving import PROCESS_IMAGE, job_id_for, limit_for

log = logging.getLogger(__name__)
RETRIES = 5
# As many starts as one job's tries: one killed run on RQ's last try is enough to give up.
MAX_ATTEMPTS = RETRIES + 1
GAVE_UP = "The image could not be processed (its processing stopped {attempts} times); upload it again."
# A product image still processing after this long without a job is queued again.
RELAY_AFTER = timedelta(minutes=10)


def process_image(upload_id: uuid.UUID) -> str:
    """Decode, check and re-encode a product image; returns the upload's status."""
    upload = db.session.get(Upload, upload_id)
    if upload is None:
        return "gone"
    storage = current_storage()
    received = upload.key(Variant.FILE)
    status, attempts = upload.status, upload.attempts
    if status == Status.PROCESSING and attempts < MAX_ATTEMPTS:
        # Counted and committed before the work: a run killed outright runs nothing after it.
        upload.attempts = Upload.attempts + 1
    db.session.commit()  # and no transaction is held while decoding
    if status == Status.READY:
        storage.delete(received)  # a run that stopped after its commit
    if status != Status.PROCESSING:
        return status
    if attempts >= MAX_ATTEMPTS:
        return _fail(upload_id, GAVE_UP.format(attempts=attempts))
    try:
        with closing(storage.open(received)) as stream:
            data = stream.read(limit_for(Purpose.PRODUCT_IMAGE) + 1)
        processed = images.process(data)
    except ObjectNotFound:
        return _fail(upload_id, "The uploaded file is missing.")
    except images.ImageRejected as exc:
        return _fail(upload_id, exc.reason)
    except BaseException:
        if final_attempt():
            _fail(upload_id, "The image could not be processed; upload it again.")
        raise
    storage.put_bytes(object_key(upload_id, Variant.IMAGE), processed.image.data)
    for variant in THUMBNAILS:
        storage.put_bytes(object_key(upload_id, variant), processed.thumbnails[variant].data)
    locked = db.session.get(Upload, upload_id, with_for_update=True, populate_existing=True)
    if locked is None or locked.status != Status.PROCESSING:  # deleted meanwhile
        db.session.rollback()
        storage.delete(*all_keys(upload_id))
        return "gone"
    locked.status = Status.READY
    locked.content_type = processed.content_type
    locked.width, locked.height = processed.image.width, processed.image.height
    locked.size = len(processed.image.data)
    locked.sha256 = hashlib.sha256(processed.image.data).hexdigest()
    db.session.commit()
    storage.delete(received)
    log.info("product image %s ready (%dx%d)", upload_id, locked.width, locked.height)
    return Status.READY.value


def _fail(upload_id: uuid.UUID, reason: str) -> str:
    """Mark the upload failed and keep none of its files."""
    upload = db.session.get(Upload, upload_id, with_for_update=True, populate_existing=True)
    if upload is not None and upload.status == Status.PROCESSING:
        upload.status = Status.FAILED
        upload.failure_reason = reason[:FAILURE_REASON_MAX]
        upload.width = upload.height = upload.size = None
        upload.sha256 = upload.content_type = None
    db.session.commit()
    current_storage().delete(*all_keys(upload_id))
    log.warning("product image %s failed: %s", upload_id, reason)
    return Status.FAILED.value


def maintain() -> dict[str, int]:
    """Periodic upkeep (the clock):

    - uploads never completed within ``UPLOAD_EXPIRE_HOURS`` are purged (row and objects);
    - a product image processing for that long is failed; one left without a live job for
      ``RELAY_AFTER`` (Redis was down at commit, a worker killed on its last try) is queued
      again, or failed once its runs reached ``MAX_ATTEMPTS``;
    - on ``file://`` storage, half-written files of processes that died are swept.
    """
    now = utcnow()
    expired_before = now - timedelta(hours=int(current_app.config["UPLOAD_EXPIRE_HOURS"]))
    storage = current_storage()
    # One statement decides and deletes (RETURNING the ids): an upload completed meanwhile
    # (its row locked by ``complete`` until it commits) is re-checked, and kept.
    abandoned = list(
        db.session.scalars(
            sa.delete(Upload)
            .where(Upload.status == Status.AWAITING_UPLOAD, Upload.created_at < expired_before)
            .returning(Upload.id)
            .execution_options(synchronize_session=False)
        )
    )
    db.session.commit()
    for upload_id in abandoned:
        storage.delete(*all_keys(upload_id))

    stuck = list(
        db.session.scalars(
            sa.select(Upload.id).where(Upload.status == Status.PROCESSING, Upload.updated_at < expired_before)
        )
    )
    for upload_id in stuck:
        _fail(upload_id, "The image was not processed in time; upload it again.")

    waiting = db.session.execute(
        sa.select(Upload.id, Upload.attempts).where(
            Upload.status == Status.PROCESSING, Upload.updated_at < now - RELAY_AFTER
        )
    ).all()
    db.session.rollback()
    relayed = gave_up = 0
    for upload_id, attempts in waiting:
        if has_live_job(job_id_for(upload_id)):
            continue
        if attempts >= MAX_ATTEMPTS:
            _fail(upload_id, GAVE_UP.format(attempts=attempts))
            gave_up += 1
        elif clear_failure("media", job_id_for(upload_id)):
            job = PendingJob(
                "media", PROCESS_IMAGE, (str(upload_id),), job_id_for(upload_id), RETRIES, "product image relay"
            )
            relayed += enqueue_now(job)
    swept = storage.sweep_partials(older_than=timedelta(days=1)) if isinstance(storage, FileStorage) else 0
    result = {"purged": len(abandoned), "failed": len(stuck) + gave_up, "relayed": relayed, "swept": swept}
    if any(result.values()):
        log.info("uploads upkeep: %s", result)
    return result
