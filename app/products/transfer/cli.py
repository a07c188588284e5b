"""``flask import-products`` and ``flask export-products``: the API's import and export,
run in this process on a local file, with a progress bar and a summary."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import click
from flask import Flask
from flask.cli import with_appcontext

from app.cli_support import reports_outages
from app.db import db
from app.errors import DomainError
from app.products.transfer import exporting, exports, importing
from app.products.transfer.models import ProductImport, RunStatus
from app.products.transfer.rows import ErrorPolicy, Mode
from app.storage import ReadStream
from app.uploads import checks


@click.command("import-products")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mode", type=click.Choice([m.value for m in Mode]), default=Mode.UPSERT.value, show_default=True)
@click.option("--dry-run", is_flag=True, help="Validate and count; write nothing.")
@click.option("--reject-all", is_flag=True, help="Write nothing if any row fails.")
@with_appcontext
@reports_outages
def import_products(path: Path, mode: str, dry_run: bool, reject_all: bool) -> None:
    """Import products from a CSV or JSON file in the import format (exit 1 if a row failed)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(checks.SNIFF_BYTES)
            handle.seek(0)
            content_type = checks.check_import(handle, head=head)
    except DomainError as exc:
        details = "; ".join(str(d.get("message")) for d in exc.details) if exc.details else ""
        raise click.ClickException(f"{path}: {exc.message}" + (f": {details}" if details else "")) from exc
    run = ProductImport(
        filename=path.name[:255],
        content_type=content_type,
        mode=mode,
        dry_run=dry_run,
        error_policy=(ErrorPolicy.REJECT_ALL if reject_all else ErrorPolicy.SKIP_INVALID_ROWS).value,
    )
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    with ExitStack() as stack:
        bars: list[Any] = []

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(stack.enter_context(click.progressbar(length=total, label="Importing", file=sys.stderr)))
            bar = bars[0]
            bar.update(done - bar.pos)

        importing.run_import(
            run_id,
            open_file=lambda: cast(ReadStream, path.open("rb")),
            on_progress=progress,
            on_wait=None if dry_run else _waiting(),
        )
    finished = db.session.get(ProductImport, run_id, populate_existing=True)
    assert finished is not None
    click.echo(
        f"Import {finished.id}{' (dry run)' if finished.dry_run else ''}: {finished.status}; "
        f"{finished.processed_rows} rows read: {finished.created} created, {finished.updated} updated, "
        f"{finished.unchanged} unchanged, {finished.failed} rejected."
    )
    if finished.failure_reason:
        click.echo(f"Failed: {finished.failure_reason}", err=True)
    if finished.failed:
        click.echo(f"Rejected rows: GET /api/v1/products/imports/{finished.id}/errors.csv", err=True)
    if finished.status != RunStatus.SUCCEEDED or finished.failed:
        sys.exit(1)


@click.command("export-products")
@click.argument("path", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list(exporting.EXPORT_FORMATS)), default="csv", show_default=True)
@with_appcontext
@reports_outages
def export_products(path: Path, fmt: str) -> None:
    """Write every live product to PATH in the import format (re-importing it changes nothing)."""
    counter, written = [0], 0
    try:
        out = path.open("wb")
    except OSError as exc:
        raise click.ClickException(f"Cannot write {path}: {exc.strerror or exc}") from exc
    with (
        out,
        click.progressbar(length=exports.count_products({}), label="Exporting", file=sys.stderr) as bar,
    ):
        for chunk in exporting.export_chunks(_counting(exports.exported_products({}), bar, counter), fmt=fmt):
            out.write(chunk)
            written += len(chunk)
    db.session.rollback()
    click.echo(f"Exported {counter[0]} products to {path} ({written} bytes, {fmt}).")


WAIT_POLL_SECONDS = 2.0


def _waiting() -> importing.WaitCallback:
    """Say once which import this one waits for (imports that write run one at a time, in
    the order they were requested), then look again every ``WAIT_POLL_SECONDS``."""
    said: set[uuid.UUID] = set()

    def wait(earlier: uuid.UUID) -> None:
        if earlier not in said:
            said.add(earlier)
            click.echo(
                f"Waiting for import {earlier}, requested earlier, to end "
                "(imports that write run one at a time, in the order they were requested)...",
                err=True,
            )
        time.sleep(WAIT_POLL_SECONDS)

    return wait


def _counting(
    products: Iterator[exporting.ExportedProduct], bar: Any, counter: list[int]
) -> Iterator[exporting.ExportedProduct]:
    for product in products:
        bar.update(1)
        counter[0] += 1
        yield product


def register(app: Flask) -> None:
    app.cli.add_command(import_products)
    app.cli.add_command(export_products)
