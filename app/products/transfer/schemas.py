"""Schemas of imports and exports: the requests that start them and the runs they report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from app.pagination import CursorListArgsSchema
from app.products.models import SLUG_MAX
from app.products.schemas import check_price_range
from app.products.transfer.exporting import EXPORT_FORMATS
from app.products.transfer.models import ProductExport, RunStatus
from app.products.transfer.rows import ErrorPolicy, Mode
from app.schema import Boolean, Money, Schema, TrimmedString, UTCDateTime
from app.uploads.models import Status
from app.uploads.urls import content_url

STATUS_VALUES = [s.value for s in RunStatus]
ERRORS_SHOWN = 100

# --- out -------------------------------------------------------------------------------


class ImportErrorSchema(Schema):
    row = ma.fields.Integer(dump_only=True, metadata={"description": "CSV: the file line; JSON: the 1-based index"})
    sku = ma.fields.String(
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "The row's SKU: as stored (upper case, as SKUs compare) when it is a valid SKU; "
            "else as the file gave it (trimmed, cut to 200 characters); null when the row has none"
        },
    )
    field = ma.fields.String(dump_only=True, metadata={"description": "A column, or 'row' for the whole row"})
    message = ma.fields.String(dump_only=True)


class ProductImportSummarySchema(Schema):
    """An import in a list (its rejected rows: ``GET /products/imports/{id}``)."""

    id = ma.fields.UUID(dump_only=True)
    upload_id = ma.fields.UUID(
        dump_only=True, allow_none=True, metadata={"description": "Null for a command-line import"}
    )
    filename = ma.fields.String(dump_only=True)
    mode = ma.fields.String(dump_only=True, metadata={"enum": [m.value for m in Mode]})
    dry_run = ma.fields.Boolean(dump_only=True)
    error_policy = ma.fields.String(dump_only=True, metadata={"enum": [p.value for p in ErrorPolicy]})
    status = ma.fields.String(dump_only=True, metadata={"enum": STATUS_VALUES})
    total_rows = ma.fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "Known once the run has read the file"}
    )
    processed_rows = ma.fields.Integer(dump_only=True, metadata={"description": "Rows done (the checkpoint)"})
    created = ma.fields.Integer(dump_only=True)
    updated = ma.fields.Integer(dump_only=True)
    unchanged = ma.fields.Integer(dump_only=True, metadata={"description": "Rows identical to the catalog"})
    failed = ma.fields.Integer(dump_only=True, metadata={"description": "Rows rejected"})
    failure_reason = ma.fields.String(
        dump_only=True, allow_none=True, metadata={"description": "Why the whole import failed"}
    )
    requested_by = ma.fields.UUID(
        dump_only=True, allow_none=True, attribute="requested_by_id", metadata={"description": "A user id"}
    )
    attempts = ma.fields.Integer(
        dump_only=True,
        metadata={"description": "Runs started: more than one when a run was interrupted (a worker's end) and resumed"},
    )
    created_at = UTCDateTime(dump_only=True)
    started_at = UTCDateTime(dump_only=True, allow_none=True)
    updated_at = UTCDateTime(
        dump_only=True, metadata={"description": "Last change: a running import's last checkpoint (progress)"}
    )
    finished_at = UTCDateTime(dump_only=True, allow_none=True)


class ProductImportSchema(ProductImportSummarySchema):
    waiting_for = ma.fields.UUID(
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "While queued behind an earlier import that writes, its id: imports that write run "
            "one at a time, in the order they were requested"
        },
    )
    errors = ma.fields.List(
        ma.fields.Nested(ImportErrorSchema),
        dump_only=True,
        metadata={"description": f"The first {ERRORS_SHOWN} rejected rows, by row (all: errors.csv)"},
    )


class ExportFileUrl(ma.fields.String):
    def serialize(self, attr: str, obj: Any, accessor: Any = None, **kwargs: Any) -> str | None:
        export: ProductExport = obj
        return content_url(export.upload_id) if export.upload_id and export.status == RunStatus.SUCCEEDED else None


class ProductExportSchema(Schema):
    id = ma.fields.UUID(dump_only=True)
    status = ma.fields.String(dump_only=True, metadata={"enum": STATUS_VALUES})
    format = ma.fields.String(dump_only=True, metadata={"enum": list(EXPORT_FORMATS)})
    filters = ma.fields.Dict(keys=ma.fields.String(), dump_only=True, metadata={"description": "As requested"})
    total_rows = ma.fields.Integer(dump_only=True, allow_none=True)
    upload_id = ma.fields.UUID(
        dump_only=True, allow_none=True, metadata={"description": f"The file: an upload of purpose {'export'}"}
    )
    url = ExportFileUrl(
        dump_only=True, allow_none=True, metadata={"format": "uri", "description": "The file's content, once done"}
    )
    failure_reason = ma.fields.String(dump_only=True, allow_none=True)
    requested_by = ma.fields.UUID(dump_only=True, allow_none=True, attribute="requested_by_id")
    created_at = UTCDateTime(dump_only=True)
    started_at = UTCDateTime(dump_only=True, allow_none=True)
    finished_at = UTCDateTime(dump_only=True, allow_none=True)


# --- in --------------------------------------------------------------------------------


class ImportCreateSchema(Schema):
    upload_id = ma.fields.UUID(required=True, metadata={"description": f"A {Status.READY} upload of purpose import"})
    mode = ma.fields.String(
        load_default=Mode.UPSERT.value,
        validate=ma.validate.OneOf([m.value for m in Mode]),
        metadata={"description": "upsert: update by SKU, create the rest; create: an existing SKU is a row error"},
    )
    dry_run = Boolean(load_default=False, metadata={"description": "Validate and count; write nothing"})
    error_policy = ma.fields.String(
        load_default=ErrorPolicy.SKIP_INVALID_ROWS.value,
        validate=ma.validate.OneOf([p.value for p in ErrorPolicy]),
        metadata={"description": "reject_all: write nothing when any row fails"},
    )


class ExportCreateSchema(Schema):
    """The format, and the filters of ``GET /products`` (staff see inactive products too)."""

    format = ma.fields.String(load_default="csv", validate=ma.validate.OneOf(EXPORT_FORMATS))
    q = TrimmedString(validate=ma.validate.Length(min=1, max=100), metadata={"description": "Search name, SKU, text"})
    category = ma.fields.String(validate=ma.validate.Length(min=1, max=SLUG_MAX), metadata={"description": "A slug"})
    min_price = Money()
    max_price = Money(metadata={"description": "Not below min_price (a 422 otherwise)"})
    in_stock = Boolean()
    is_active = Boolean()
    updated_after = UTCDateTime(
        metadata={"description": "Products changed at or after this time (a sale's stock change included)"}
    )

    @ma.validates_schema
    def _price_range(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        check_price_range(data)


class ImportQueryArgsSchema(CursorListArgsSchema):
    status = ma.fields.String(validate=ma.validate.OneOf(STATUS_VALUES))
