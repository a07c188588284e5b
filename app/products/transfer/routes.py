"""/products/imports and /products/exports: bulk work, run by the workers (202 + Location)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView

from app.api import Blueprint
from app.pagination import Page
from app.permissions import current_principal
from app.products.permissions import can_import
from app.products.transfer import errors_csv, service
from app.products.transfer.models import ProductExport, ProductImport
from app.products.transfer.schemas import (
    ExportCreateSchema,
    ImportCreateSchema,
    ImportQueryArgsSchema,
    ProductExportSchema,
    ProductImportSchema,
    ProductImportSummarySchema,
)

ACCEPTED = {
    "Location": {"description": "Where to follow the run's progress", "required": True, "schema": {"type": "string"}}
}
ERRORS_CSV = {
    200: {
        "description": "Every rejected row: row, sku, field, message (cells that a spreadsheet would "
        "read as a formula are neutralised with a leading ')",
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "headers": {
            "Content-Disposition": {
                "description": 'attachment; filename="import-<id>-errors.csv"',
                "required": True,
                "schema": {"type": "string"},
            }
        },
    }
}


def register(blp: Blueprint) -> None:
    """Add the import and export routes to the catalog's blueprint (``prefix``: /api/v1)."""
    prefix = blp.url_prefix

    @blp.route("/products/imports")
    class Imports(MethodView):
        @can_import
        @blp.arguments(ImportQueryArgsSchema, location="query")
        @blp.response(200, ProductImportSummarySchema(many=True))
        @blp.doc(operationId="list_product_imports")
        def get(self, args: dict[str, Any]) -> Page[ProductImport]:
            """List imports, newest first."""
            return service.list_imports(args=args)

        @can_import
        @blp.arguments(ImportCreateSchema)
        @blp.response(202, ProductImportSchema, headers=ACCEPTED)
        @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
        @blp.doc(operationId="start_product_import")
        def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
            """Import products from an upload of purpose import (runs on a worker).

            Imports that write run one at a time, in the order they were requested: this one
            stays queued while an earlier one has not ended. A dry run does not wait.
            """
            run = service.start_import(data=data, requester=current_principal())
            return _import_view(run), 202, {"Location": f"{prefix}/products/imports/{run.id}"}

    @blp.route("/products/imports/<uuid:import_id>")
    class ImportItem(MethodView):
        @can_import
        @blp.response(200, ProductImportSchema)
        @blp.alt_response(404, response="NOT_FOUND")
        @blp.doc(operationId="get_product_import")
        def get(self, import_id: uuid.UUID) -> dict[str, Any]:
            """An import's progress, counts and first rejected rows."""
            return _import_view(service.get_import(import_id=import_id))

    @blp.route("/products/imports/<uuid:import_id>/errors.csv", methods=["GET"])
    @can_import
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="get_product_import_errors", responses=ERRORS_CSV)
    def import_errors(import_id: uuid.UUID) -> Response:
        """Every rejected row of an import, as CSV."""
        errors = service.all_errors(import_id=import_id)
        first = next(errors, None)  # a missing import is a 404 before anything is sent
        rows = errors if first is None else itertools.chain([first], errors)
        return Response(
            stream_with_context(errors_csv.error_lines(rows)),
            content_type=errors_csv.CONTENT_TYPE,
            headers={
                "Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"',
                "Cache-Control": "no-store",
            },
        )

    @blp.route("/products/exports", methods=["POST"])
    @can_import
    @blp.arguments(ExportCreateSchema, required=False)
    @blp.response(202, ProductExportSchema, headers=ACCEPTED)
    @blp.doc(operationId="start_product_export")
    def start_export(data: dict[str, Any]) -> tuple[ProductExport, int, dict[str, str]]:
        """Export the catalog (filtered as GET /products) in the import format (runs on a worker)."""
        data.setdefault("format", "csv")
        export = service.start_export(data=data, requester=current_principal())
        return export, 202, {"Location": f"{prefix}/products/exports/{export.id}"}

    @blp.route("/products/exports/<uuid:export_id>", methods=["GET"])
    @can_import
    @blp.response(200, ProductExportSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="get_product_export")
    def get_export(export_id: uuid.UUID) -> ProductExport:
        """An export's progress, and its file once done."""
        return service.get_export(export_id=export_id)


def _import_view(run: ProductImport) -> dict[str, Any]:
    return {
        **{name: getattr(run, name) for name in _IMPORT_ATTRIBUTES},
        "errors": service.first_errors(run),
        "waiting_for": service.earlier_unfinished(run),
    }


_IMPORT_ATTRIBUTES = tuple(field.attribute or name for name, field in ProductImportSummarySchema().fields.items())
