"""Running an export: the catalog (filtered as ``GET /products``) in the import format.

The products are streamed from the database in chunks and the file is streamed to
storage as it is written (never held whole), as an upload of purpose ``export`` owned by
the requester. Importing the file changes nothing: every row comes back ``unchanged``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import current_app
from rq.timeouts import JobTimeoutException

from app.db import db, on_postgresql, utcnow
from app.jobs import final_attempt, run_time_limit
from app.products import queries
from app.products.models import Product
from app.products.transfer import exporting
from app.products.transfer.models import ProductExport, RunStatus
from app.schema import utc_text
from app.storage import ChunksReader
from app.uploads.models import Purpose
from app.uploads.receiving import save_generated

log = logging.getLogger(__name__)

CHUNK_ROWS = 1_000
MONEY_FILTERS = frozenset({"min_price", "max_price"})
TIME_FILTERS = frozenset({"updated_after"})


def exported_products(filters: Mapping[str, Any]) -> Iterator[exporting.ExportedProduct]:
    """Every live product matching ``filters`` (inactive ones too), by SKU, streamed: as
    they all were at one moment (PostgreSQL: one REPEATABLE READ snapshot for the rows and
    the categories read chunk by chunk beside them)."""
    if on_postgresql() and not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    stmt = queries.apply_filters(
        sa.select(*queries.COLUMNS).where(queries.live()),
        filters,
    ).order_by(Product.sku)
    result = db.session.execute(stmt.execution_options(yield_per=CHUNK_ROWS))
    for chunk in result.partitions():
        categories = queries.categories_of([row.id for row in chunk])
        for row in chunk:
            yield exporting.ExportedProduct(
                sku=row.sku,
                name=row.name,
                description=row.description,
                price=row.price,
                compare_at_price=row.compare_at_price,
                stock=row.stock,
                low_stock_threshold=row.low_stock_threshold,
                category_slugs=sorted(ref.slug for ref in categories.get(row.id, [])),
                is_active=row.is_active,
                image_upload_id=row.image_upload_id,
            )


def storable_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The filters as stored (JSON): money and times as their text (``stored_filters``
    reads them back)."""
    return {
        name: utc_text(value) if name in TIME_FILTERS else str(value) if name in MONEY_FILTERS else value
        for name, value in filters.items()
    }


def stored_filters(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The filters as the export was asked for them."""
    return {
        name: datetime.fromisoformat(value)
        if name in TIME_FILTERS
        else Decimal(value)
        if name in MONEY_FILTERS
        else value
        for name, value in stored.items()
    }


def count_products(filters: Mapping[str, Any]) -> int:
    stmt = queries.apply_filters(sa.select(sa.func.count()).select_from(Product).where(queries.live()), filters)
    return db.session.scalar(stmt) or 0


def run_export(export_id: uuid.UUID) -> str:
    """Write the export's file (again, if a previous attempt died); returns its status."""
    export = db.session.get(ProductExport, export_id)
    if export is None:
        return "gone"
    if export.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        return export.status
    if export.requested_by_id is None:
        return _finish(export_id, RunStatus.FAILED, reason="The account that asked for the export is gone.")
    export.status, export.attempts = RunStatus.RUNNING, export.attempts + 1
    export.started_at = export.started_at or utcnow()
    owner_id, fmt, filters = export.requested_by_id, export.format, stored_filters(export.filters)
    db.session.commit()
    counted = _Counted(exported_products(filters))
    try:
        upload = save_generated(
            owner_id=owner_id,
            purpose=Purpose.EXPORT,
            filename=f"products-{utcnow():%Y%m%d-%H%M%S}.{fmt}",
            content_type=exporting.CONTENT_TYPES[fmt],
            source=ChunksReader(exporting.export_chunks(counted, fmt=fmt)),
        )
    except JobTimeoutException:
        # As an import's: another try would take as long again.
        db.session.rollback()
        limit = run_time_limit(current_app.config["IMPORT_JOB_TIMEOUT"])
        reason = f"The export took longer than {limit} s (IMPORT_JOB_TIMEOUT); ask for fewer products (filters)."
        return _finish(export_id, RunStatus.FAILED, reason=reason)
    except BaseException:
        db.session.rollback()
        if final_attempt():
            _finish(export_id, RunStatus.FAILED, reason="The export stopped on an unexpected error; ask for it again.")
        raise
    return _finish(export_id, RunStatus.SUCCEEDED, upload_id=upload.id, total_rows=counted.count)


class _Counted(Iterator[exporting.ExportedProduct]):
    def __init__(self, products: Iterator[exporting.ExportedProduct]) -> None:
        self._products = products
        self.count = 0

    def __next__(self) -> exporting.ExportedProduct:
        product = next(self._products)
        self.count += 1
        return product


def _finish(export_id: uuid.UUID, status: RunStatus, **values: Any) -> str:
    reason = values.pop("reason", None)
    db.session.execute(
        sa.update(ProductExport)
        .where(ProductExport.id == export_id)
        .values(status=status, finished_at=utcnow(), failure_reason=reason, **values)
    )
    db.session.commit()
    log.info("export finished", extra={"export_id": str(export_id), "status": status})
    return status
