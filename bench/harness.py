"""What every benchmark shares: the settings, wrk, gunicorn servers, the database, the table.

A benchmark is a module with ``run(ctx: Context) -> list[Row]`` listed in
``bench/__main__.py``. It asks the context for what it needs (the migrated, seeded bench
database; the app under gunicorn; a file of requests for wrk) and returns rows for the
one table that ``bench/run`` prints. Everything written goes under ``bench/results/``
(git-ignored); only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"  # never anything else

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP_SECONDS", "3"))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))
WRK_CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
# gunicorn as the Procfile runs it (gunicorn.conf.py), sized like the run: 2 x 8.
WEB_CONCURRENCY = os.environ.get("BENCH_WEB_CONCURRENCY", "2")
GUNICORN_THREADS = os.environ.get("BENCH_GUNICORN_THREADS", "8")

WRK_MISSING = (
    "wrk is not installed: it is the load generator of every HTTP benchmark here.\n"
    "Install it from Debian's packages:  sudo apt-get install -y wrk"
)


@dataclass
class Row:
    """One line of the table: a rate, its latencies, and the goal it is held to.

    ``ratio`` is the rate relative to the row whose ``key`` is ``ratio_of``; a goal is any
    of ``min_ratio``, ``min_rate`` and ``max_p99_ms``.
    """

    key: str
    name: str
    rate: float
    unit: str = "req/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    ratio_of: str | None = "hello"
    ratio: float | None = None
    min_ratio: float | None = None
    min_rate: float | None = None
    max_p99_ms: float | None = None
    met: bool | None = None
    note: str = ""

    def goal(self) -> str:
        parts = []
        if self.min_ratio is not None:
            parts.append(f">= {self.min_ratio:.2f}x {self.ratio_of}")
        if self.min_rate is not None:
            parts.append(f">= {self.min_rate:.0f} {self.unit}")
        if self.max_p99_ms is not None:
            parts.append(f"p99 <= {self.max_p99_ms:.0f} ms")
        return ", ".join(parts)

    def judge(self, by_key: dict[str, Row]) -> None:
        reference = by_key.get(self.ratio_of or "")
        if reference is not None and reference.rate:
            self.ratio = self.rate / reference.rate
        checks = []
        if self.min_ratio is not None:
            checks.append(self.ratio is not None and self.ratio >= self.min_ratio)
        if self.min_rate is not None:
            checks.append(self.rate >= self.min_rate)
        if self.max_p99_ms is not None:
            checks.append(self.p99_ms is not None and self.p99_ms <= self.max_p99_ms)
        if self.errors:
            checks.append(False)
        self.met = all(checks) if checks else None


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    output: str = field(repr=False)


# --- wrk ---------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _find(pattern: str, output: str) -> str:
    match = re.search(pattern, output, re.M)
    if match is None:
        raise ValueError(f"wrk printed no {pattern!r}:\n{output}")
    return match.group(1)


def parse_wrk(output: str) -> WrkResult:
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", output))
    p50 = _ms(_find(r"^\s+50%\s+(\S+)", output))
    p99 = _ms(_find(r"^\s+99%\s+(\S+)", output))
    total = int(_find(r"(\d+) requests in", output))
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return WrkResult(rps, p50, p99, total, errors, output)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(WRK_MISSING)
    return path


def wrk(url: str, *, label: str, requests: Path | None = None, warmup_requests: Path | None = None) -> WrkResult:
    """``wrk -t2 -c32`` for ``WARMUP_SECONDS`` (discarded), then ``SECONDS`` measured.

    ``requests``: a file of requests to rotate through (see ``write_requests``), used by
    the warm-up too unless ``warmup_requests`` names another; without it every request
    is a GET of ``url``.
    """
    command = [require_wrk(), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", "--timeout", "10s"]
    if requests is not None:
        command += ["-s", str(ROOT / "bench" / "requests.lua")]

    def env_for(path: Path | None) -> dict[str, str]:
        return {**os.environ, "WRK_REQUESTS": str(path)} if path is not None else dict(os.environ)

    if WARMUP_SECONDS:
        warmup_env = env_for(warmup_requests or requests)
        subprocess.run([*command, f"-d{WARMUP_SECONDS}s", url], env=warmup_env, check=True, capture_output=True)
    done = subprocess.run(
        [*command, f"-d{SECONDS}s", "--latency", url], env=env_for(requests), check=True, capture_output=True, text=True
    )
    (RESULTS / "wrk").mkdir(parents=True, exist_ok=True)
    (RESULTS / "wrk" / f"{_slug(label)}.txt").write_text(done.stdout)
    return parse_wrk(done.stdout)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    authorization: str = ""
    body: str = ""


def write_requests(name: str, requests: Sequence[Request]) -> Path:
    """A file ``bench/requests.lua`` rotates through: one tab-separated request a line."""
    folder = RESULTS / "requests"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.tsv"
    lines = []
    for r in requests:
        for part in (r.method, r.path, r.authorization, r.body):
            if "\t" in part or "\n" in part:
                raise ValueError(f"tab or newline in a bench request: {part!r}")
        lines.append("\t".join((r.method, r.path, r.authorization, r.body)))
    path.write_text("\n".join(lines) + "\n")
    return path


def row_from(key: str, name: str, result: WrkResult, **goal: Any) -> Row:
    return Row(
        key=key,
        name=name,
        rate=result.requests_per_second,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        **goal,
    )


# --- servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def gunicorn(target: str, *, name: str, env: dict[str, str], ready_path: str = "/") -> Iterator[int]:
    """``gunicorn <target>`` as the Procfile's web process runs it (gunicorn.conf.py),
    bound to loopback on a free port; yields the port, stops it with SIGTERM."""
    port = free_port()
    env = {**env, "PORT": str(port), "WEB_CONCURRENCY": WEB_CONCURRENCY, "GUNICORN_THREADS": GUNICORN_THREADS}
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), target, f"--bind={HOST}:{port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name}: gunicorn exited with {process.returncode}; see {log}")
            with contextlib.suppress(OSError):
                if get(port, ready_path)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no answer within 60 s; see {log}")
            time.sleep(0.2)
        yield port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


# --- the bench database and app ------------------------------------------------------------


def app_environment(**overrides: str) -> dict[str, str]:
    """The production config, on the bench's database and Redis, rate limits off (a load
    generator is one client: it would be refused within a second)."""
    env = dict(os.environ)
    env.update(
        APP_ENV="production",
        FLASK_APP="wsgi",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        SECRET_KEY=_SECRETS["SECRET_KEY"],
        JWT_SECRET_KEY=_SECRETS["JWT_SECRET_KEY"],
        PUBLIC_BASE_URL=f"http://{HOST}",
        RATELIMIT_ENABLED="false",
        MAIL_URL="console",
        # One machine: its disk is shared by every process of the run.
        STORAGE_URL=f"file://{RESULTS / 'uploads'}",
        ALLOW_LOCAL_STORAGE="1",
        PROXY_FIX_X_FOR="0",
        # The orders bench places thousands of unpaid orders from 100 customers.
        ORDER_MAX_PENDING="1000000",
    )
    env.update(overrides)
    return env


# One pair of secrets per run: tokens minted while seeding are valid in the servers.
_SECRETS = {"SECRET_KEY": secrets.token_urlsafe(48), "JWT_SECRET_KEY": secrets.token_urlsafe(48)}


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


def migrate() -> None:
    subprocess.run(
        [str(VENV_BIN / "flask"), "db", "upgrade"],
        cwd=ROOT,
        env=app_environment(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def psql(statement: str) -> None:
    """Run one statement on the bench database (autocommit: VACUUM, ANALYZE)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(DATABASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())


def flush_bench_redis() -> None:
    """The bench's own Redis database: last run's jobs and cache entries."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


class Context:
    """Shared, lazily prepared state of one bench run."""

    def __init__(self) -> None:
        self.started_at = datetime.now(UTC)
        self._prepared = False
        self.notes: list[str] = []

    def prepare_database(self) -> None:
        """Create, migrate and empty the bench's Redis once per run."""
        if self._prepared:
            return
        ensure_database()
        migrate()
        flush_bench_redis()
        self._prepared = True

    def app(self, name: str = "app", **env: str) -> contextlib.AbstractContextManager[int]:
        """The Storefront API under gunicorn (production config)."""
        self.prepare_database()
        return gunicorn("wsgi:app", name=name, env=app_environment(**env), ready_path="/health/live")


# --- the table ---------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    """The rows, judged against their goals, as a Markdown table."""
    by_key = {row.key: row for row in rows}
    for row in rows:
        row.judge(by_key)
    lines = [
        "| benchmark | rate | p50 | p99 | errors | ratio | goal |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.3f}x {row.ratio_of}" if row.ratio is not None else ""
        p50 = f"{row.p50_ms:.1f} ms" if row.p50_ms is not None else ""
        p99 = f"{row.p99_ms:.1f} ms" if row.p99_ms is not None else ""
        goal = row.goal()
        if goal:
            goal = ("met: " if row.met else "**NOT met**: ") + goal
        note = f" ({row.note})" if row.note else ""
        lines.append(
            f"| {row.name}{note} | {row.rate:,.0f} {row.unit} | {p50} | {p99} | {row.errors} | {ratio} | {goal} |"
        )
    return "\n".join(lines)


def save(rows: Sequence[Row], table: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.md"
    path.write_text(table + "\n")
    (RESULTS / f"{stamp}.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return path
