"""Product imports (issue 12): 100,000 CSV rows through the API and a real worker, and the naive way.

Ours, end to end as a client sees it: a generated CSV in the import format (docs/API.md
"Import files") is uploaded (``POST /api/v1/uploads``, ``purpose=import``, as staff),
imported (``POST /api/v1/products/imports``) by a real RQ worker (``python worker.py``),
and polled (``GET /api/v1/products/imports/{id}``) until ``succeeded``; the time runs from
the start of the upload to that answer. The app runs under gunicorn and the worker as
the Procfile runs them, both in the bench's production environment. Meanwhile the
worker's work-horse is sampled for its peak RSS. Twice: new products (every row
creates one), then the same file again (every row unchanged, nothing written).

The naive way, beside it: ``csv.DictReader`` → ``ProductCreateSchema`` (the cells
converted the obvious way) → one ORM ``Product`` per row, ``commit()`` every 1,000 rows,
in a process of its own (``python -m bench.imports --naive FILE RESULT``) with an app
context on the same database; its time is the loop's alone (no upload, no worker).

Each run starts from a catalog without the bench's SKUs (``BENCH-IMP-``, ``BENCH-NAIVE-``)
and leaves none behind (deleted, then ``VACUUM FULL ANALYZE``: indexes rebuilt), so that the other benchmarks
see the same catalog whether this one ran or not. ``BENCH_IMPORT_ROWS`` (100,000) sets
the file's size.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from app.products.transfer.rows import COLUMNS
from bench import fixtures, harness
from bench.harness import Row

USES_WRK = False
ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))
SKU_PREFIX = "BENCH-IMP-"
NAIVE_SKU_PREFIX = "BENCH-NAIVE-"
NAIVE_COMMIT_EVERY = 1_000
# The goals of issue 12, end to end.
MIN_ROWS_PER_SECOND = 25_000.0
MAX_PEAK_RSS_MB = 200.0
POLL_INTERVAL = 0.05  # seconds between two GETs of the import
IMPORT_TIMEOUT = 300.0  # seconds an import may take before the bench gives up on it
# Categories some rows name (created first); slug → name.
CATEGORIES = {
    "bench-kitchen": "Kitchen (bench)",
    "bench-garden": "Garden (bench)",
    "bench-office": "Office (bench)",
    "bench-travel": "Travel (bench)",
    "bench-gifts": "Gifts (bench)",
    "bench-sale": "Sale (bench)",
    "bench-new": "New in (bench)",
    "bench-eco": "Eco (bench)",
}
_ADJECTIVES = ("Sturdy", "Handy", "Classic", "Compact", "Deluxe", "Everyday", "Bright", "Quiet", "Rugged", "Cosy")
_MATERIALS = ("Oak", "Steel", "Linen", "Ceramic", "Bamboo", "Wool", "Glass", "Copper", "Cotton", "Walnut", "Café")
_NOUNS = ("Lamp", "Mug", "Backpack", "Notebook", "Kettle", "Hoodie", "Speaker", "Puzzle", "Bottle", "Blanket", "Tray")
_SENTENCES = (
    "Made to last, and easy to clean.",
    'Our "best seller" three years running.',
    "Fits in a drawer, a bag or a glovebox.",
    "Hand-finished; each one is a little different.",
    "Ships in recycled packaging — no plastic.",
    "Dishwasher safe (top rack).",
    "Two-year warranty, no questions asked.",
    "Pairs well with the rest of the range, or on its own.",
    "Crème, sand and slate; colours may vary slightly.",
    "Measures 24 x 16 x 9 cm, weighs 420 g (0.9 lb).",
)


@dataclass(frozen=True)
class ImportFile:
    path: Path
    rows: int
    category_links: int  # (product, category) pairs the file asks for
    size: int  # bytes


@dataclass(frozen=True)
class Timed:
    """One import through the API, as the client saw it."""

    seconds: float  # from the start of the upload to the answer that says succeeded
    peak_rss_mb: float | None  # the work-horse's
    result: dict[str, Any]  # the finished import, as GET answered it
    phases: dict[str, float]  # seconds: upload, queued, counting, batches, after

    def breakdown(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.phases.items())


def run(ctx: harness.Context) -> list[Row]:
    ctx.prepare_database()
    token = fixtures.staff_token(ctx)
    _ensure_categories()
    _forget_bench_products()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-imports-") as folder:
            ours = write_csv(Path(folder) / "products.csv", sku_prefix=SKU_PREFIX, rows=ROWS)
            naive_file = write_csv(Path(folder) / "naive.csv", sku_prefix=NAIVE_SKU_PREFIX, rows=ROWS)
            print(f"imports: a file of {ours.rows:,} rows, {ours.size / harness.MIB:.1f} MiB")
            with ctx.app(name="app-imports") as port, ctx.worker(name="worker-imports") as worker_pid:
                before = harness.memory_mb(worker_pid) or 0.0
                created = import_through_api(port, worker_pid, token, ours)
                print(f"imports: new products {created.seconds:.1f} s ({created.breakdown()})")
                unchanged = import_through_api(port, worker_pid, token, ours)
                print(f"imports: unchanged {unchanged.seconds:.1f} s ({unchanged.breakdown()})")
            created_errors = _created_errors(created, ours)
            # The naive way starts from the same catalog: without ours (whose slugs it would take).
            _forget_bench_products()
            naive = run_naive(naive_file)
            naive_errors = ROWS - _count_products(NAIVE_SKU_PREFIX)
            print(f"imports: naive {naive['seconds']:.1f} s")
    finally:
        _forget_bench_products()

    size = f"{ROWS:,} CSV rows"
    return [
        Row(
            key="import",
            name=f"import {size}: upload → API → worker → succeeded, new products",
            rate=ROWS / created.seconds,
            unit="rows/s",
            seconds=created.seconds,
            peak_rss_mb=created.peak_rss_mb,
            errors=created_errors,
            ratio_of="import-naive",
            min_rate=MIN_ROWS_PER_SECOND,
            max_peak_rss_mb=MAX_PEAK_RSS_MB,
            note=f"{created.breakdown()}; worker {before:.0f} MB before",
        ),
        Row(
            key="import-unchanged",
            name=f"import {size} again: every row unchanged",
            rate=ROWS / unchanged.seconds,
            unit="rows/s",
            seconds=unchanged.seconds,
            peak_rss_mb=unchanged.peak_rss_mb,
            errors=ROWS - int(unchanged.result["unchanged"]),
            ratio_of="import-naive",
            min_rate=MIN_ROWS_PER_SECOND,
            max_peak_rss_mb=MAX_PEAK_RSS_MB,
            note=unchanged.breakdown(),
        ),
        Row(
            key="import-naive",
            name=f"naive: DictReader → ProductCreateSchema → ORM Product per row, commit per {NAIVE_COMMIT_EVERY:,}",
            rate=ROWS / naive["seconds"],
            unit="rows/s",
            seconds=naive["seconds"],
            peak_rss_mb=naive["peak_rss_mb"],
            errors=naive_errors,
            ratio_of=None,
            note="in-process, the file on local disk",
        ),
    ]


# --- the file ------------------------------------------------------------------------------


def write_csv(path: Path, *, sku_prefix: str, rows: int) -> ImportFile:
    """``rows`` products in the import format, every column, deterministic: varied names,
    descriptions (some quoted, some empty), prices, sales, stock, categories for most rows."""
    rng = random.Random(12)
    slugs = list(CATEGORIES)
    links = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)  # the import format's columns, in an export's order
        for n in range(1, rows + 1):
            name = (
                f"{rng.choice(_ADJECTIVES)} {rng.choice(_MATERIALS)} {rng.choice(_NOUNS)} "
                f"{rng.choice('ABCDEFGHKLMNPRSTVX')}{n:06d}"
            )
            description = " ".join(rng.sample(_SENTENCES, rng.randint(1, 3))) if rng.random() < 0.8 else ""
            price = Decimal(rng.randint(99, 49_999)) / 100
            on_sale = rng.random() < 0.2
            compare_at_price = (price * Decimal(rng.choice(("1.10", "1.25", "1.50")))).quantize(Decimal("0.01"))
            stock = 0 if rng.random() < 0.1 else rng.randint(1, 500)
            threshold = str(rng.randint(0, 20)) if rng.random() < 0.3 else ""
            chosen = rng.sample(slugs, rng.randint(1, 3)) if rng.random() < 0.7 else []
            links += len(chosen)
            writer.writerow(
                (
                    f"{sku_prefix}{n:06d}",
                    name,
                    description,
                    f"{price:.2f}",
                    f"{compare_at_price:.2f}" if on_sale else "",
                    stock,
                    threshold,
                    "|".join(chosen),
                    "false" if rng.random() < 0.05 else "true",
                    "",
                )
            )
    return ImportFile(path=path, rows=rows, category_links=links, size=path.stat().st_size)


# --- ours: through the API and a worker -------------------------------------------------------


def import_through_api(port: int, worker_pid: int, token: str, file: ImportFile) -> Timed:
    """Upload ``file``, import it, poll until it ends; the upload is deleted afterwards."""
    base = f"http://{harness.HOST}:{port}/api/v1"
    # httpx logs every request at INFO, and the app's logging (set up by the fixtures) shows it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Wall-clock times (the server's timestamps are this machine's clock too); the total
    # is measured on the monotonic clock.
    client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    with client, harness.HorseMemory(worker_pid) as horses:
        started, started_at = time.perf_counter(), time.time()
        with file.path.open("rb") as content:
            response = client.post(
                f"{base}/uploads",
                data={"purpose": "import"},
                files={"file": (file.path.name, content, "text/csv")},
                timeout=120,  # (streamed from the file, never read whole)
            )
        upload = _data(response, 201)
        if upload["status"] != "ready":
            raise RuntimeError(f"the import file was not accepted: {upload}")
        uploaded_at = time.time()
        response = client.post(f"{base}/products/imports", json={"upload_id": upload["id"]})
        run = _data(response, 202)
        posted_at = time.time()
        location = f"http://{harness.HOST}:{port}{response.headers['Location']}"
        counted_at: float | None = None  # when a GET first saw total_rows: the counting pass is over
        while run["status"] not in ("succeeded", "failed"):
            if time.perf_counter() - started > IMPORT_TIMEOUT:
                raise RuntimeError(f"the import did not end within {IMPORT_TIMEOUT:.0f} s: {run}")
            time.sleep(POLL_INTERVAL)
            run = _data(client.get(location), 200)
            if counted_at is None and run["total_rows"] is not None:
                counted_at = time.time()
        seconds, done_at = time.perf_counter() - started, time.time()
        _expect(client.delete(f"{base}/uploads/{upload['id']}"), 204)  # its file goes too
    if run["status"] != "succeeded":
        raise RuntimeError(f"the import failed: {run['failure_reason']}")
    worker_started, worker_finished = _epoch(run["started_at"]), _epoch(run["finished_at"])
    counted_at = max(counted_at or worker_started, worker_started)
    phases = {
        "upload": uploaded_at - started_at,
        "queued": worker_started - posted_at,  # enqueued, picked up, forked
        "counting": counted_at - worker_started,  # (to within POLL_INTERVAL)
        "batches": worker_finished - counted_at,  # validated, written, checkpointed; the end
        "seen": done_at - worker_finished,  # until a GET said so
    }
    return Timed(seconds=seconds, peak_rss_mb=horses.peak_mb, result=run, phases=phases)


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def _data(response: httpx.Response, status: int) -> dict[str, Any]:
    _expect(response, status)
    data: dict[str, Any] = response.json()["data"]
    return data


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.url}: {response.status_code} {response.text[:500]}")


def _created_errors(timed: Timed, file: ImportFile) -> int:
    """Rows that did not end as a new product with its categories (0 when all is well)."""
    result = timed.result
    missing = file.rows - int(result["created"]) + int(result["failed"])
    if _count_products(SKU_PREFIX) != file.rows or _count_links(SKU_PREFIX) != file.category_links:
        missing = max(missing, 1)
    return missing


# --- the naive way ------------------------------------------------------------------------------


def run_naive(file: ImportFile) -> dict[str, Any]:
    """The naive import in a process of its own: its seconds and peak RSS (MiB)."""
    result = file.path.with_suffix(".json")
    log = harness.RESULTS / "naive-import.log"
    with log.open("wb") as out:
        subprocess.run(
            [str(harness.VENV_BIN / "python"), "-m", "bench.imports", "--naive", str(file.path), str(result)],
            cwd=harness.ROOT,
            env=harness.app_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=600,
        )
    measured: dict[str, Any] = json.loads(result.read_text())
    return measured


def naive_import(path: Path) -> dict[str, Any]:
    """What the tutorials show: DictReader, the API's schema, an ORM object per row."""
    import sqlalchemy as sa

    from app import create_app
    from app.db import db
    from app.products.models import Category, Product
    from app.products.schemas import ProductCreateSchema
    from app.products.slugs import slugify
    from config import ProductionConfig

    app = create_app(ProductionConfig(harness.app_environment()))
    with app.app_context():
        schema = ProductCreateSchema()
        categories = {category.slug: category for category in db.session.scalars(sa.select(Category))}
        started, n = time.perf_counter(), 0
        with path.open(newline="", encoding="utf-8") as content:
            for n, row in enumerate(csv.DictReader(content), start=1):
                data: dict[str, Any] = {column: cell for column, cell in row.items() if cell != ""}
                for column in ("stock", "low_stock_threshold"):
                    if column in data:
                        data[column] = int(data[column])
                if "is_active" in data:
                    data["is_active"] = data["is_active"] == "true"
                slugs = data.pop("categories", "").split("|")
                data["category_ids"] = [str(categories[slug].id) for slug in slugs if slug]
                fields = schema.load(data)
                category_ids = set(fields.pop("category_ids"))
                product = Product(
                    **fields,
                    slug=slugify(fields["name"], fallback="product"),
                    categories=[c for c in categories.values() if c.id in category_ids],
                )
                db.session.add(product)
                if n % NAIVE_COMMIT_EVERY == 0:
                    db.session.commit()
        db.session.commit()
        seconds = time.perf_counter() - started
        db.engine.dispose()
    return {"seconds": seconds, "rows": n, "peak_rss_mb": harness.memory_mb(os.getpid(), "VmHWM")}


# --- the bench's rows in the catalog ---------------------------------------------------------------


def _ensure_categories() -> None:
    import psycopg

    from app.db import new_id

    with psycopg.connect(_psycopg_url(), autocommit=True) as conn:
        for slug, name in CATEGORIES.items():
            conn.execute(
                "INSERT INTO categories (id, slug, name, created_at, updated_at) VALUES (%s, %s, %s, now(), now())"
                " ON CONFLICT (slug) DO NOTHING",
                (new_id(), slug, name),
            )


def _forget_bench_products() -> None:
    """Delete every product of the bench's SKUs (for good: a soft delete would leave them in
    the table the other benchmarks read), then a compact table and fresh statistics."""
    import psycopg

    with psycopg.connect(_psycopg_url(), autocommit=True) as conn:
        for prefix in (SKU_PREFIX, NAIVE_SKU_PREFIX):
            conn.execute("DELETE FROM products WHERE sku LIKE %s", (f"{prefix}%",))
    # FULL: 200,000 rows in and out leave the indexes (GIN ones above all) many times their
    # size, which would slow every later read of the catalog benchmarks.
    harness.psql("VACUUM FULL ANALYZE products, product_categories")


def _count_products(prefix: str) -> int:
    return _scalar("SELECT count(*) FROM products WHERE sku LIKE %s AND deleted_at IS NULL", prefix)


def _count_links(prefix: str) -> int:
    return _scalar(
        "SELECT count(*) FROM product_categories pc JOIN products p ON p.id = pc.product_id WHERE p.sku LIKE %s",
        prefix,
    )


def _scalar(query: str, prefix: str) -> int:
    import psycopg

    with psycopg.connect(_psycopg_url()) as conn:
        row = conn.execute(query.encode(), (f"{prefix}%",)).fetchone()
    return int(row[0]) if row else 0


def _psycopg_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(harness.DATABASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--naive"] or len(sys.argv) != 4:
        sys.exit("usage: python -m bench.imports --naive FILE RESULT (bench/run imports runs it)")
    Path(sys.argv[3]).write_text(json.dumps(naive_import(Path(sys.argv[2]))))
