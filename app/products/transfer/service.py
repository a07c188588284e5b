"""Use cases of imports and exports: start one, read them, list the rejected rows.

A run is a row (``product_imports``, ``product_exports``) committed before its job is
enqueued (after that commit, with a deterministic job id); the API reports the row, never
RQ's state, so an import is visible whatever happens to Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.db import db
from app.errors import NotFound, ValidationFailed
from app.jobs import enqueue_after_commit
from app.pagination import Page, SortKey, paginate
from app.permissions import Principal
from app.products.transfer import exports
from app.products.transfer.models import ProductExport, ProductImport, ProductImportError, RunStatus
from app.products.transfer.rows import RowError
from app.products.transfer.schemas import ERRORS_SHOWN
from app.uploads.models import Purpose, Status, Upload

IMPORT_QUEUE = "imports"
RUN_IMPORT = "app.products.transfer.tasks.run_import"
RUN_EXPORT = "app.products.transfer.tasks.run_export"
SORTABLE = {"created_at": ProductImport.created_at}
DEFAULT_SORT = (SortKey("created_at", descending=True),)
ERRORS_CHUNK = 5_000


def import_job_id(import_id: uuid.UUID) -> str:
    return f"import-{import_id}"  # RQ 2 job ids: letters, digits, "_" and "-" only


def export_job_id(export_id: uuid.UUID) -> str:
    return f"export-{export_id}"


def start_import(*, data: Mapping[str, Any], requester: Principal) -> ProductImport:
    """Record an import of a ready ``import`` upload and queue it (after the commit)."""
    upload = db.session.get(Upload, data["upload_id"])
    if upload is None or upload.purpose != Purpose.IMPORT or upload.status != Status.READY:
        message = "Must be a ready upload of purpose import."
        raise ValidationFailed(details=[{"field": "upload_id", "message": message}])
    run = ProductImport(
        upload_id=upload.id,
        filename=upload.filename,
        content_type=upload.content_type or "text/csv",
        requested_by_id=requester.id,
        mode=data["mode"],
        dry_run=data["dry_run"],
        error_policy=data["error_policy"],
    )
    db.session.add(run)
    db.session.flush()
    enqueue_import(run.id)
    db.session.commit()
    return run


def enqueue_import(import_id: uuid.UUID) -> None:
    enqueue_after_commit(
        IMPORT_QUEUE,
        RUN_IMPORT,
        str(import_id),
        job_id=import_job_id(import_id),
        description="product import",
        timeout=_job_timeout(),
    )


def earlier_unfinished(run_row: ProductImport) -> uuid.UUID | None:
    """The first import that writes, requested before ``run_row``, that has not ended; None
    for a dry run, which writes nothing, and for an import already running (it waited)."""
    if run_row.dry_run or run_row.status != RunStatus.QUEUED:
        return None
    earlier: uuid.UUID | None = db.session.execute(
        sa.select(ProductImport.id)
        .where(
            ProductImport.dry_run.is_(False),
            ProductImport.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]),
            sa.or_(
                ProductImport.created_at < run_row.created_at,
                sa.and_(ProductImport.created_at == run_row.created_at, ProductImport.id < run_row.id),
            ),
        )
        .order_by(ProductImport.created_at, ProductImport.id)
        .limit(1)
    ).scalar()
    return earlier


def get_import(*, import_id: uuid.UUID) -> ProductImport:
    run = db.session.get(ProductImport, import_id)
    if run is None:
        raise NotFound("Import not found")
    return run


def first_errors(run: ProductImport) -> list[ProductImportError]:
    return list(
        db.session.scalars(
            sa.select(ProductImportError)
            .where(ProductImportError.import_id == run.id)
            .order_by(ProductImportError.row, ProductImportError.id)
            .limit(ERRORS_SHOWN)
        )
    )


def list_imports(*, args: Mapping[str, Any]) -> Page[ProductImport]:
    stmt = sa.select(ProductImport)
    if "status" in args:
        stmt = stmt.where(ProductImport.status == args["status"])
    return paginate(stmt, args, sortable=SORTABLE, default_sort=DEFAULT_SORT, tiebreak=ProductImport.id)


def all_errors(*, import_id: uuid.UUID) -> Iterator[RowError]:
    """Every rejected row of an import, by row, read in chunks (for ``errors.csv``)."""
    get_import(import_id=import_id)
    after: tuple[int, int] = (-1, -1)
    while True:
        chunk = db.session.execute(
            sa.select(ProductImportError)
            .where(
                ProductImportError.import_id == import_id,
                sa.tuple_(ProductImportError.row, ProductImportError.id) > sa.tuple_(*map(sa.literal, after)),
            )
            .order_by(ProductImportError.row, ProductImportError.id)
            .limit(ERRORS_CHUNK)
        ).scalars()
        errors = list(chunk)
        if not errors:
            return
        for error in errors:
            yield RowError(row=error.row, sku=error.sku, field=error.field, message=error.message)
        after = (errors[-1].row, errors[-1].id)


def start_export(*, data: Mapping[str, Any], requester: Principal) -> ProductExport:
    filters = {name: value for name, value in data.items() if name != "format"}
    export = ProductExport(
        requested_by_id=requester.id, format=data["format"], filters=exports.storable_filters(filters)
    )
    db.session.add(export)
    db.session.flush()
    enqueue_after_commit(
        IMPORT_QUEUE,
        RUN_EXPORT,
        str(export.id),
        job_id=export_job_id(export.id),
        description="product export",
        timeout=_job_timeout(),
    )
    db.session.commit()
    return export


def get_export(*, export_id: uuid.UUID) -> ProductExport:
    export = db.session.get(ProductExport, export_id)
    if export is None:
        raise NotFound("Export not found")
    return export


def _job_timeout() -> int:
    timeout: int = current_app.config["IMPORT_JOB_TIMEOUT"]
    return timeout
