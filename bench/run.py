"""Throughput of the catalog and of order placement: PostgreSQL, gunicorn, loopback load.

    .venv/bin/python bench/run.py        (or: make bench)

Creates the database at ``BENCH_DATABASE_URL`` if missing (default
postgresql+psycopg://postgres@127.0.0.1:5432/bench), migrates it, seeds the demo catalog
(idempotent), starts gunicorn on a free loopback port with the production config, and
drives each endpoint for ``BENCH_SECONDS`` (10) with ``BENCH_CONNECTIONS`` (4) keep-alive
connections, one thread each, then places orders (``POST /api/v1/orders``, one line each,
from ``BENCH_CUSTOMERS`` distinct customers on products with plenty of stock). Prints
requests/s, p50/p99 latency and each endpoint's throughput relative to /health/live
measured in the same run. Stops gunicorn at the end. Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"  # never anything else
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench")
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP_SECONDS = 1.0
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
WORKERS = int(os.environ.get("BENCH_WORKERS", str(max(2, os.cpu_count() or 2))))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
PRODUCTS = int(os.environ.get("BENCH_PRODUCTS", "10000"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100"))
ORDER_PRODUCTS = 200  # products orders are spread over, restocked generously before the run
# A hard cap per connection, so that a very fast endpoint cannot run away either.
MAX_REQUESTS_PER_CONNECTION = 1_000_000


def app_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        APP_ENV="production",
        FLASK_APP="wsgi",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL="redis://127.0.0.1:6379/13",
        SECRET_KEY=secrets.token_urlsafe(48),
        JWT_SECRET_KEY=secrets.token_urlsafe(48),
        RATELIMIT_ENABLED="false",
        MAIL_URL="console",
        PROXY_FIX_X_FOR="0",
    )
    return env


def ensure_database() -> None:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    url = make_url(DATABASE_URL)
    name = url.database or "bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "flask"), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@dataclass
class Fixtures:
    product_ids: list[str]
    order_product_ids: list[str]
    customer_tokens: list[str]


def seed(env: dict[str, str]) -> Fixtures:
    """Seed the catalog and the customers in this process (same secrets as the server)."""
    import sqlalchemy as sa

    from app import create_app
    from app.auth.sessions import open_session
    from app.db import db
    from app.products.models import Product
    from app.products.seed import seed_catalog
    from app.users import service as users_service
    from config import ProductionConfig

    app = create_app(ProductionConfig(env))
    with app.app_context():
        started = time.perf_counter()
        result = seed_catalog(products=PRODUCTS)
        elapsed = time.perf_counter() - started
        print(f"seed: {result.products_created} created, {result.products_existing} already there ({elapsed:.1f} s)")
        live = sa.select(Product.id).where(Product.is_active.is_(True), Product.deleted_at.is_(None))
        product_ids = [str(i) for i in db.session.scalars(live.limit(1000))]
        order_ids = [str(i) for i in db.session.scalars(live.order_by(Product.sku).limit(ORDER_PRODUCTS))]
        db.session.execute(sa.update(Product).where(Product.id.in_(order_ids)).values(stock=1_000_000))
        tokens = []
        for n in range(CUSTOMERS):
            email = f"bench-customer-{n}@example.com"
            user = users_service.find_by_email(email) or users_service.create(
                email=email, password=secrets.token_urlsafe(16) + "-Aa1", full_name=f"Bench {n}"
            )
            tokens.append(open_session(user, user_agent="bench", ip=HOST).access_token)
        db.session.commit()
        db.engine.dispose()
    vacuum_analyze()
    return Fixtures(product_ids, order_ids, tokens)


def vacuum_analyze() -> None:
    """What autovacuum would do after a bulk load: fresh statistics, and the GIN indexes'
    pending lists merged (until then the planner prices the trigram indexes too high)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(DATABASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE products, product_categories, categories")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "wsgi:app",
        f"--bind={HOST}:{port}",
        f"--workers={WORKERS}",
        "--worker-class=gthread",
        f"--threads={THREADS}",
        "--keep-alive=30",
        "--log-level=warning",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/health/live")
            if conn.getresponse().status == 200:
                conn.close()
                return process
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"gunicorn did not answer within 30 s; see {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


# A "path source" yields the next request (a path means a GET) for one connection.
PathSource = Callable[[], Iterator["str | Call"]]


def fixed(path: str) -> PathSource:
    def source() -> Iterator[str]:
        while True:
            yield path

    return source


def pages(pages: int, per_page: int = 20) -> PathSource:
    def source() -> Iterator[str]:
        n = 0
        while True:
            yield f"/api/v1/products?page={n % pages + 1}&per_page={per_page}"
            n += 1

    return source


def by_id(ids: list[str]) -> PathSource:
    def source() -> Iterator[str]:
        n = 0
        while True:
            yield f"/api/v1/products/{ids[n % len(ids)]}"
            n += 1

    return source


def searches() -> PathSource:
    """Selective and broad searches over name, SKU and description (trigram indexes)."""
    terms = ["kettle 77", "demo-0123", "lamp", "batteries", "cosy blanket 4", "mug 19"]

    def source() -> Iterator[str]:
        n = 0
        while True:
            yield f"/api/v1/products?{urlencode({'q': terms[n % len(terms)]})}"
            n += 1

    return source


class CursorWalk:
    """Follows meta.next_cursor from the first page, starting over at the end."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.next_cursor: str | None = None

    def __call__(self) -> Iterator[str]:
        while True:
            query = {"limit": str(self.limit)}
            if self.next_cursor:
                query["cursor"] = self.next_cursor
            yield f"/api/v1/products?{urlencode(query)}"

    def saw(self, body: bytes) -> None:
        self.next_cursor = json.loads(body)["meta"]["next_cursor"]


def drive(port: int, make_source: Callable[[], tuple[PathSource, Callable[[bytes], None] | None]]) -> Result:
    """``CONNECTIONS`` threads, one keep-alive connection each, for ``SECONDS`` after a warm-up."""
    results = [Result() for _ in range(CONNECTIONS)]
    start_at = time.monotonic() + WARMUP_SECONDS
    stop_at = start_at + SECONDS

    def worker(result: Result) -> None:
        source, on_body = make_source()
        paths = source()
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            now = time.monotonic()
            if now >= stop_at:
                break
            item = next(paths)
            call = item if isinstance(item, Call) else Call("GET", item)
            began = time.perf_counter()
            try:
                conn.request(call.method, call.path, body=call.body, headers=call.headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                result.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
                continue
            took = time.perf_counter() - began
            if now >= start_at:
                if 200 <= response.status < 300:
                    result.latencies.append(took)
                else:
                    result.errors += 1
            if on_body is not None and response.status == 200:
                on_body(body)
        conn.close()

    threads = [threading.Thread(target=worker, args=(r,)) for r in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + WARMUP_SECONDS + 30)
    merged = Result(elapsed=SECONDS)
    for result in results:
        merged.latencies.extend(result.latencies)
        merged.errors += result.errors
    return merged


def orders(tokens: list[str], product_ids: list[str]) -> PathSource:
    """Each request from the next customer, for one unit of the next product."""
    address = {"name": "Bench", "line1": "1 Loop Rd", "city": "Localhost", "postal_code": "127", "country": "US"}
    counter = iter(range(10**9))

    def source() -> Iterator[str | Call]:
        while True:
            n = next(counter)  # shared across connections: customers and products rotate
            body = {
                "items": [{"product_id": product_ids[n % len(product_ids)], "quantity": 1}],
                "shipping_address": address,
            }
            headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}", "Content-Type": "application/json"}
            yield Call("POST", "/api/v1/orders", json.dumps(body).encode(), headers)

    return source


def plain(source: PathSource) -> Callable[[], tuple[PathSource, None]]:
    return lambda: (source, None)


def cursor_walk() -> tuple[PathSource, Callable[[bytes], None]]:
    walk = CursorWalk()
    return walk, walk.saw


def main() -> int:
    env = app_environment()
    print(f"database {DATABASE_URL}; {CONNECTIONS} connections x {SECONDS:.0f} s per endpoint")
    ensure_database()
    migrate(env)
    import redis

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()  # the bench's own Redis database: last run's mail jobs
    fixtures = seed(env)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-catalog-")) / "gunicorn.log"
    process = start_gunicorn(env, port, log)
    print(f"gunicorn pid {process.pid} on {HOST}:{port}: {WORKERS} workers x {THREADS} threads (log: {log})")
    try:
        runs = [
            ("GET /health/live", plain(fixed("/health/live"))),
            ("GET /api/v1/products (page, 20)", plain(pages(50))),
            ("GET /api/v1/products?limit=20 (cursor walk)", cursor_walk),
            ("GET /api/v1/products/{id}", plain(by_id(fixtures.product_ids))),
            ("GET /api/v1/products?q=… (search, 20)", plain(searches())),
            (
                "POST /api/v1/orders (distinct customers)",
                plain(orders(fixtures.customer_tokens, fixtures.order_product_ids)),
            ),
        ]
        results = [(name, drive(port, make)) for name, make in runs]
    finally:
        stop(process)
        print(f"gunicorn stopped (exit {process.returncode})")

    baseline = results[0][1].rps
    print()
    print(f"{'endpoint':<46} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs live':>8}")
    for name, result in results:
        ratio = result.rps / baseline if baseline else float("nan")
        print(
            f"{name:<46} {result.rps:>9.1f} {result.percentile(0.50):>8.2f} "
            f"{result.percentile(0.99):>8.2f} {result.errors:>7} {ratio:>8.2f}"
        )
    return 1 if any(result.errors for _, result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
