"""The upkeep of imports and exports whose job was lost.

A run is queued after its row commits; if Redis could not take the job then, or a worker
was killed on the job's last attempt (RQ gives up on it without our code running), the
row stays ``queued`` or ``running`` with no job. The clock calls ``relay`` every minute:
such a run is queued again (it resumes from its checkpoint), or, after ``MAX_ATTEMPTS``
starts, failed with a reason, so that nothing is silently dropped and nothing loops forever.
An import waiting for an earlier one to end is left alone until that one has ended.

An import of ``flask import-products`` left ``running`` (its command was killed) is no
worker's to resume (its file is on the command's machine): it is failed at once, with what
it wrote and what running the command again does.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.db import db, on_postgresql, utcnow
from app.jobs import PendingJob, clear_failure, enqueue_now, has_live_job
from app.products.transfer import importing, service
from app.products.transfer.models import ProductExport, ProductImport, RunStatus

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
QUIET_FOR = timedelta(minutes=2)  # a run whose row moved more recently is left alone
# Without PostgreSQL's advisory lock nothing tells a stopped command from one still writing
# (a long final write): on SQLite a command's run is ended only after this much quiet.
COMMAND_QUIET_WITHOUT_LOCKS = timedelta(hours=1)
BATCH = 200
GAVE_UP = "The import stopped {attempts} times without finishing (a worker killed each time?); run it again."


def relay() -> dict[str, int]:
    counts = {"requeued": 0, "failed": 0}
    quiet_since = utcnow() - QUIET_FOR
    for model, job_id_of, func in (
        (ProductImport, service.import_job_id, service.RUN_IMPORT),
        (ProductExport, service.export_job_id, service.RUN_EXPORT),
    ):
        stuck = db.session.execute(
            sa.select(model.id, model.attempts, model.updated_at)
            .where(model.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]), model.updated_at < quiet_since)
            .order_by(model.created_at)
            .limit(BATCH)
        ).all()
        for run_id, attempts, updated_at in stuck:
            job_id = job_id_of(run_id)
            if has_live_job(job_id):
                continue
            if model is ProductImport and _from_command_line(run_id):
                long_quiet = updated_at < utcnow() - COMMAND_QUIET_WITHOUT_LOCKS
                if (on_postgresql() or long_quiet) and importing.end_stopped_command_run(run_id) == RunStatus.FAILED:
                    counts["failed"] += 1
                continue
            if model is ProductImport and _waits_for_an_earlier_import(run_id):
                continue
            if attempts >= MAX_ATTEMPTS:
                db.session.execute(
                    sa.update(model)
                    .where(model.id == run_id, model.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
                    .values(
                        status=RunStatus.FAILED, finished_at=utcnow(), failure_reason=GAVE_UP.format(attempts=attempts)
                    )
                )
                db.session.commit()
                counts["failed"] += 1
                continue
            job = PendingJob(
                service.IMPORT_QUEUE,
                func,
                (str(run_id),),
                job_id,
                retries=5,
                description="relayed",
                timeout=current_app.config["IMPORT_JOB_TIMEOUT"],
            )
            if clear_failure(service.IMPORT_QUEUE, job_id) and enqueue_now(job):
                counts["requeued"] += 1
    if any(counts.values()):
        log.info("transfers relayed", extra=counts)
    return counts


def _waits_for_an_earlier_import(import_id: uuid.UUID) -> bool:
    run = db.session.get(ProductImport, import_id)
    waits = run is not None and service.earlier_unfinished(run) is not None
    db.session.rollback()
    return waits


def _from_command_line(import_id: uuid.UUID) -> bool:
    run = db.session.get(ProductImport, import_id)
    db.session.rollback()  # nothing held while the command's lock is tried
    return run is not None and run.from_command_line
