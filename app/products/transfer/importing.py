"""Running an import: read the file in batches, validate, write, checkpoint; resumable.

One run (``run_import``) goes:

1. Count the rows (a parse without validation): over ``IMPORT_MAX_ROWS`` the import fails
   before anything is written.
2. Pass over the rows in batches of ``IMPORT_BATCH_SIZE``. Each batch is validated (the
   rules of ``POST /products``), its category slugs and images resolved, then written (or,
   in a dry run, classified); its rejected rows, its counts and the checkpoint
   (``processed_rows``) are committed in the same transaction as its products. A run that
   dies resumes after the last committed batch and ends with the catalog, counts and
   errors one clean run gives. The checkpoint moves only from the value this run read
   (a conditional UPDATE), so two runners can never both apply a batch.
3. ``reject_all``: the pass above is a dry run; only when no row failed are the rows
   written, all in one transaction (a row that fails then, because the catalog changed in
   between, rolls everything back).

On PostgreSQL a run holds an advisory lock on its import: a second run of the same import
meanwhile is refused (``ImportBusy``; as a job it is retried later, by when the first has
finished). The requester gets a summary mail through the outbox when the import ends.

Imports that write run one at a time, in the order they were requested: a run whose import
was requested after another that writes and has not ended (queued, running, interrupted and
waiting for its retry) does nothing and leaves it ``queued``. Two files over the same SKUs
thus end as the later one says, never as a mix of the two (batches of both interleaved, or
an interrupted earlier import resumed over a later one). The import that ends queues the
next one waiting (``_wake_next``); the relay queues one whose wake-up was missed. A dry
run writes nothing: it neither waits nor is waited for.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app
from rq import get_current_job
from rq.timeouts import JobTimeoutException

from app.db import db, on_postgresql, utcnow
from app.jobs import final_attempt, has_live_job, run_time_limit
from app.mail import service as mail
from app.products.cache import catalog_changed
from app.products.transfer import reading, service, validation, writing
from app.products.transfer.models import (
    FIELD_MAX,
    MESSAGE_MAX,
    SKU_TEXT_MAX,
    ProductImport,
    ProductImportError,
    RunStatus,
)
from app.products.transfer.rows import BatchOutcome, ErrorPolicy, Mode, RawRow, RowError, ValidRow
from app.schema import storable
from app.storage import ReadStream
from app.urls import public_url
from app.users.models import User

log = logging.getLogger(__name__)

Opener = Callable[[], ReadStream]
# Called after each batch with (rows done, rows in the file): the command line's progress bar.
ProgressCallback = Callable[[int, int], None]
# Called (then the earlier import is looked for again) while an earlier import that writes
# has not ended, with its id: the command line waits; a job leaves its import queued instead.
WaitCallback = Callable[[uuid.UUID], None]
# ANALYZE the products table after an import that wrote at least this many rows.
ANALYZE_AFTER = 1_000
PROGRESS_INTERVAL = 1.0  # seconds between two progress notes in the RQ job's meta


class ImportFailed(Exception):
    """The import as a whole cannot run (its file is gone, too long…): it fails with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImportBusy(Exception):
    """Another run of this import holds it; this one touched nothing (a job retries later)."""


@dataclass
class Counts:
    processed_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0

    def add(self, outcome: BatchOutcome, *, rows: int, failed: int) -> None:
        self.processed_rows += rows
        self.created += outcome.created
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged
        self.failed += failed


@dataclass
class _Run:
    import_id: uuid.UUID
    mode: Mode
    content_type: str
    open_file: Opener
    on_progress: ProgressCallback | None
    total_rows: int = 0
    _last_note: float = field(default=0.0)

    def note_progress(self, counts: Counts, *, force: bool = False) -> None:
        if self.on_progress is not None:
            self.on_progress(counts.processed_rows, self.total_rows)
        now = time.monotonic()
        if not force and now - self._last_note < PROGRESS_INTERVAL:
            return
        self._last_note = now
        job = get_current_job()
        if job is not None:
            job.meta["progress"] = {"total_rows": self.total_rows, **counts.__dict__}
            job.save_meta()  # type: ignore[no-untyped-call]  # rq leaves save_meta unannotated


def run_import(
    import_id: uuid.UUID,
    *,
    open_file: Opener,
    on_progress: ProgressCallback | None = None,
    on_wait: WaitCallback | None = None,
) -> str:
    """Run (or resume) an import to its end; returns its status. Idempotent once finished.

    While an import requested earlier that writes has not ended, ``on_wait`` is called
    (then it is looked for again); without ``on_wait`` the import is left queued (its
    status is returned) for ``_wake_next`` or the relay to queue again."""
    with _exclusive(import_id) as acquired:
        if not acquired:
            raise ImportBusy(f"import {import_id} is running elsewhere")
        run_row = db.session.get(ProductImport, import_id, populate_existing=True)
        if run_row is None:
            return "gone"
        if run_row.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            return run_row.status
        while (earlier := service.earlier_unfinished(run_row)) is not None:
            db.session.rollback()  # nothing held while waiting; the next look reads afresh
            if on_wait is None:
                log.info("import waits for an earlier one", extra={"import_id": str(import_id), "after": str(earlier)})
                return run_row.status
            try:
                on_wait(earlier)
            except BaseException:  # the command stopped (Ctrl-C): the import ends, others need not wait for it
                _finish(
                    import_id,
                    RunStatus.FAILED,
                    reason=f"Stopped while waiting for import {earlier}; nothing was written.",
                )
                raise
        run = _Run(
            import_id=import_id,
            mode=Mode(run_row.mode),
            content_type=run_row.content_type,
            open_file=open_file,
            on_progress=on_progress,
        )
        dry_run, reject_all = run_row.dry_run, run_row.error_policy == ErrorPolicy.REJECT_ALL
        run_row.status = RunStatus.RUNNING
        run_row.attempts += 1
        run_row.started_at = run_row.started_at or utcnow()
        db.session.commit()
        try:
            counts = _run(run, dry_run=dry_run, reject_all=reject_all)
        except ImportFailed as exc:
            db.session.rollback()
            return _finish(import_id, RunStatus.FAILED, reason=exc.reason)
        except JobTimeoutException:
            db.session.rollback()
            limit = run_time_limit(current_app.config["IMPORT_JOB_TIMEOUT"])
            reason = f"The import took longer than {limit} s (IMPORT_JOB_TIMEOUT); processed_rows tells how far it got."
            return _finish(import_id, RunStatus.FAILED, reason=reason)
        except ImportBusy:
            db.session.rollback()  # another run holds the import: it is not this one's to end
            raise
        except BaseException:
            db.session.rollback()
            if final_attempt():
                _finish(import_id, RunStatus.FAILED, reason="The import stopped on an unexpected error; run it again.")
            raise
        if reject_all and counts.failed:
            # Nothing was (or, in a dry run, would be) written: the import as a whole failed.
            written = "a real run would write nothing" if dry_run else "nothing was written"
            reason = f"{counts.failed} row(s) were rejected (see errors); with reject_all {written}."
            return _finish(import_id, RunStatus.FAILED, counts=counts, reason=reason)
        status = _finish(import_id, RunStatus.SUCCEEDED, counts=counts)
        if not dry_run and counts.created + counts.updated >= ANALYZE_AFTER:
            _analyze()
        return status


def end_stopped_command_run(import_id: uuid.UUID) -> str | None:
    """Fail an import of ``flask import-products`` whose command stopped (killed, its
    terminal closed) before it finished, saying so and how far it got: no worker can
    finish it, the file is on the command's machine. Its status, or None while the command
    still runs it (it holds the import: PostgreSQL's advisory lock)."""
    with _exclusive(import_id) as acquired:
        if not acquired:
            return None
        run_row = db.session.get(ProductImport, import_id, populate_existing=True)
        if run_row is None:
            return "gone"
        if run_row.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            return run_row.status
        return _finish(import_id, RunStatus.FAILED, reason=stopped_command_reason(run_row))


def stopped_command_reason(run_row: ProductImport) -> str:
    """What a stopped command's import did, and what running the command again does."""
    of = f" of {run_row.total_rows}" if run_row.total_rows is not None else ""
    stopped = "The command running this import (flask import-products) stopped before it finished"
    again = "Run the command again on the same file to finish it"
    if run_row.dry_run:
        return f"{stopped}; it was a dry run: nothing was written ({run_row.processed_rows}{of} rows checked). {again}."
    if run_row.error_policy == ErrorPolicy.REJECT_ALL:
        return f"{stopped}; nothing was written (--reject-all writes every row at the end, at once). {again}."
    written = run_row.created + run_row.updated
    if run_row.mode == Mode.CREATE:
        repeat = "its rows already written are then rejected as existing SKUs (--mode create), the others created"
    else:
        repeat = "its rows already written are then left unchanged (nothing is written twice), the others written"
    return (
        f"{stopped}: {run_row.processed_rows}{of} rows were read and {written} products written "
        f"({run_row.created} created, {run_row.updated} updated, {run_row.unchanged} unchanged, "
        f"{run_row.failed} rejected). {again}: {repeat}."
    )


def _run(run: _Run, *, dry_run: bool, reject_all: bool) -> Counts:
    run.total_rows = _count_rows(run)
    checkpoint = db.session.execute(
        sa.update(ProductImport)
        .where(ProductImport.id == run.import_id)
        .values(total_rows=run.total_rows)
        .returning(
            ProductImport.processed_rows,
            ProductImport.created,
            ProductImport.updated,
            ProductImport.unchanged,
            ProductImport.failed,
        )
    ).one()
    db.session.commit()
    counts = Counts(*checkpoint)
    # reject_all validates everything first (a dry pass, checkpointed like any other).
    counts = _checkpointed_pass(run, counts, write=not (dry_run or reject_all))
    if reject_all and counts.failed:
        return Counts(processed_rows=counts.processed_rows, failed=counts.failed)  # nothing is written
    if reject_all and not dry_run:
        return _all_or_nothing_pass(run, counts)
    return counts


def _count_rows(run: _Run) -> int:
    limit = current_app.config["IMPORT_MAX_ROWS"]
    with closing(run.open_file()) as stream:
        total = sum(1 for _ in itertools.islice(_rows(run, stream), limit + 1))
    if total > limit:
        raise ImportFailed(f"The file has more than {limit} rows (IMPORT_MAX_ROWS); split it into smaller files.")
    return total


def _rows(run: _Run, stream: ReadStream) -> Iterator[RawRow]:
    try:
        yield from reading.read_rows(stream, content_type=run.content_type)
    except reading.FileRejected as exc:
        raise ImportFailed(exc.message) from exc


def _checkpointed_pass(run: _Run, counts: Counts, *, write: bool) -> Counts:
    """From the checkpoint to the end, one committed transaction per batch."""
    with closing(run.open_file()) as stream:
        rows = _rows(run, stream)
        first_rows: dict[str | None, int] = {}  # SKU → the row that had it first, for the whole file
        for raw in itertools.islice(rows, counts.processed_rows):
            first_rows.setdefault(_sku_of(raw), raw.number)
        for batch in _batched(rows, current_app.config["IMPORT_BATCH_SIZE"]):
            outcome, failed = _process(run, batch, first_rows, write=write)
            _record_errors(run.import_id, outcome.errors)
            before = counts.processed_rows
            counts.add(outcome, rows=len(batch), failed=failed)
            _checkpoint(run.import_id, counts, expected=before)
            if outcome.changed_ids:
                catalog_changed()
            db.session.commit()
            run.note_progress(counts)
    run.note_progress(counts, force=True)
    return counts


def _all_or_nothing_pass(run: _Run, validated: Counts) -> Counts:
    """``reject_all`` once every row passed: write them all in one transaction."""
    counts = Counts(processed_rows=validated.processed_rows)
    errors: list[RowError] = []
    with closing(run.open_file()) as stream:
        first_rows: dict[str | None, int] = {}
        for batch in _batched(_rows(run, stream), current_app.config["IMPORT_BATCH_SIZE"]):
            outcome, _failed = _process(run, batch, first_rows, write=True)
            errors.extend(outcome.errors)
            counts.add(outcome, rows=0, failed=0)
    if errors:
        # The catalog changed since the rows were checked (a SKU taken meanwhile, say).
        db.session.rollback()
        _record_errors(run.import_id, errors)
        return Counts(processed_rows=validated.processed_rows, failed=len({e.row for e in errors}))
    catalog_changed()
    return counts  # committed with the import's end (``_finish``)


def _process(
    run: _Run, batch: Sequence[RawRow], first_rows: dict[str | None, int], *, write: bool
) -> tuple[BatchOutcome, int]:
    """Validate and write (or classify) one batch; the outcome's errors cover every stage."""
    errors: list[RowError] = []
    valid: list[ValidRow] = []
    for raw in batch:
        sku = _sku_of(raw)
        first = first_rows.setdefault(sku, raw.number) if sku is not None else raw.number
        if first != raw.number:
            message = f"The SKU is already in row {first} of this file."
            errors.append(RowError(raw.number, validation.error_sku(raw.values.get("sku")), "sku", message))
            continue
        result = validation.validate(raw)
        if isinstance(result, list):
            errors.extend(result)
        else:
            valid.append(result)
    resolved, reference_errors = validation.resolve_references(valid)
    outcome = writing.write_batch(resolved, mode=run.mode, dry_run=not write)
    outcome.errors[:0] = errors + reference_errors
    failed = len({error.row for error in outcome.errors})
    return outcome, failed


def _sku_of(raw: RawRow) -> str | None:
    """The row's SKU as stored (upper case), for spotting a SKU twice in one file."""
    value = raw.values.get("sku")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().upper()


def _batched(rows: Iterable[RawRow], size: int) -> Iterator[list[RawRow]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _record_errors(import_id: uuid.UUID, errors: Sequence[RowError]) -> None:
    if errors:
        db.session.execute(
            sa.insert(ProductImportError),
            [
                {
                    "import_id": import_id,
                    "row": e.row,
                    "sku": storable(e.sku)[:SKU_TEXT_MAX] if e.sku is not None else None,
                    "field": e.field[:FIELD_MAX],
                    "message": storable(e.message)[:MESSAGE_MAX],
                }
                for e in errors
            ],
        )


def _checkpoint(import_id: uuid.UUID, counts: Counts, *, expected: int) -> None:
    """Move the checkpoint from ``expected``; if another run moved it, undo this batch."""
    result = db.session.execute(
        sa.update(ProductImport)
        .where(
            ProductImport.id == import_id,
            ProductImport.processed_rows == expected,
            ProductImport.status == RunStatus.RUNNING,
        )
        .values(**counts.__dict__, updated_at=utcnow())
    )
    if getattr(result, "rowcount", 0) != 1:
        db.session.rollback()
        raise ImportBusy(f"import {import_id} was advanced by another run")


def _finish(import_id: uuid.UUID, status: RunStatus, *, counts: Counts | None = None, reason: str | None = None) -> str:
    """End the import (with its final counts), mail the requester, commit."""
    values: dict[str, Any] = {
        "status": status,
        "finished_at": utcnow(),
        "failure_reason": storable(reason) if reason is not None else None,
    }
    if counts is not None:
        values.update(counts.__dict__)
    db.session.execute(sa.update(ProductImport).where(ProductImport.id == import_id).values(**values))
    run_row = db.session.get(ProductImport, import_id, populate_existing=True)
    if run_row is not None:
        _mail_summary(run_row)
    _wake_next()
    db.session.commit()
    log.info("import finished", extra={"import_id": str(import_id), "import_status": str(status), "reason": reason})
    return status


def _wake_next() -> None:
    """Queue (once this transaction commits) the first import left waiting for an earlier
    one, if it has no job: this one may have been what it waited for. One of the command
    line waits in its own process, and one whose job is still there looks again itself (a
    job that looked just before this commit is missed: the relay queues its import)."""
    waiting = db.session.execute(
        sa.select(ProductImport.id)
        .where(
            ProductImport.status == RunStatus.QUEUED,
            ProductImport.dry_run.is_(False),
            # not one of the command line (see ``ProductImport.from_command_line``)
            sa.or_(ProductImport.upload_id.is_not(None), ProductImport.requested_by_id.is_not(None)),
        )
        .order_by(ProductImport.created_at, ProductImport.id)
        .limit(1)
    ).scalar()
    if waiting is not None and not has_live_job(service.import_job_id(waiting)):
        service.enqueue_import(waiting)


def _mail_summary(run_row: ProductImport) -> None:
    user = db.session.get(User, run_row.requested_by_id) if run_row.requested_by_id else None
    if user is None or user.deleted_at is not None:
        return
    mail.send(
        to=user.email,
        template="import_finished",
        context={
            "full_name": user.full_name,
            "run": run_row,
            "errors_url": public_url(f"/api/v1/products/imports/{run_row.id}/errors.csv"),
        },
    )


def _analyze() -> None:
    """Fresh planner statistics after a large import (PostgreSQL; autovacuum lags behind)."""
    if on_postgresql():
        db.session.execute(sa.text("ANALYZE products"))
        db.session.commit()


@contextmanager
def _exclusive(import_id: uuid.UUID) -> Iterator[bool]:
    """A PostgreSQL advisory lock on the import, for the run's whole length (elsewhere: yes).

    A session-level lock on a connection of its own: it outlives the run's transactions and
    goes with the connection if the process dies.
    """
    if not on_postgresql():
        yield True
        return
    key = int.from_bytes(import_id.bytes[:8], "big", signed=True)
    with db.engine.connect() as connection:
        acquired = bool(connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
