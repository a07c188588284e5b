"""RQ jobs of imports and exports (the ``imports`` queue)."""

from __future__ import annotations

import uuid

from app.db import db
from app.jobs import task
from app.products.transfer import exports, importing, relay
from app.products.transfer.models import ProductImport
from app.storage import ObjectNotFound, ReadStream
from app.uploads import service as uploads_service
from app.uploads.models import Upload


@task
def run_import(import_id: str) -> str:
    """Run or resume an import from its checkpoint (one of ``flask import-products``,
    relayed by an earlier version, is failed saying its command stopped: its file is not here)."""
    run_id = uuid.UUID(import_id)
    run = db.session.get(ProductImport, run_id)
    if run is not None and run.from_command_line:
        db.session.rollback()
        status = importing.end_stopped_command_run(run_id)
        if status is None:  # the command is still running it
            raise importing.ImportBusy(f"import {run_id} is run by a command")
        return status

    def open_file() -> ReadStream:
        run = db.session.get(ProductImport, run_id)
        upload = db.session.get(Upload, run.upload_id) if run is not None and run.upload_id else None
        if upload is None:
            raise importing.ImportFailed("The import file was deleted before the import ran.")
        try:
            return uploads_service.open_file(upload)
        except ObjectNotFound as exc:
            raise importing.ImportFailed("The import file is missing from storage.") from exc

    return importing.run_import(run_id, open_file=open_file)


@task
def run_export(export_id: str) -> str:
    """Write an export's file."""
    return exports.run_export(uuid.UUID(export_id))


@task
def relay_transfers() -> dict[str, int]:
    """Periodic: queue again the imports and exports whose job was lost (Redis down at
    enqueue time, a worker killed on its last attempt); fail those that keep dying."""
    return relay.relay()
