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
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    of ``min_ratio``, ``min_rate``, ``max_p99_ms`` and ``max_peak_rss_mb``. A row of work
    that is not requests (an import: ``unit`` "rows/s") gives ``seconds``, the time the
    work took, and ``peak_rss_mb``, the most memory the process doing it held; the table
    has those columns only when some row gives them. ``errors``: failed requests, or
    for such work whatever did not come out as it should (rows rejected, say).
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
    seconds: float | None = None
    peak_rss_mb: float | None = None
    max_peak_rss_mb: float | None = None
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
        if self.max_peak_rss_mb is not None:
            parts.append(f"peak RSS < {self.max_peak_rss_mb:.0f} MB")
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
        if self.max_peak_rss_mb is not None:
            checks.append(self.peak_rss_mb is not None and self.peak_rss_mb < self.max_peak_rss_mb)
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
    # Each gunicorn worker's share of the CPU the workers used while measured (percent).
    worker_split: tuple[int, ...] = ()
    # Measurements discarded because the load landed on too few workers (see ``wrk``).
    lopsided: int = 0
    # The CPU the workers used per request measured (ms): the app's own cost, beside a
    # rate that also moves with whatever else the machine is doing.
    cpu_ms_per_request: float | None = None


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

    def env_for(path: Path | None, skip: int = 0) -> dict[str, str]:
        if path is None:
            return dict(os.environ)
        return {**os.environ, "WRK_REQUESTS": str(path), "WRK_SKIP": str(skip)}

    if WARMUP_SECONDS:
        warmup_env = env_for(warmup_requests or requests)
        subprocess.run([*command, f"-d{WARMUP_SECONDS}s", url], env=warmup_env, check=True, capture_output=True)
    master = _SERVERS.get(urlsplit(url).port or 0)
    lopsided = sent = 0
    while True:
        before = _cpu_ticks(children(master)) if master else {}
        done = subprocess.run(
            [*command, f"-d{SECONDS}s", "--latency", url],
            # A measurement taken again goes on past what the earlier ones sent: a row of
            # cold requests stays cold (each of its requests a first).
            env=env_for(requests, skip=sent),
            check=True,
            capture_output=True,
            text=True,
        )
        after = _cpu_ticks(children(master)) if master else {}
        split = _split(before, after)
        if not _is_lopsided(split) or lopsided == LOPSIDED_RETRIES:
            break
        lopsided += 1
        sent += parse_wrk(done.stdout).requests
        time.sleep(1)  # the workers back to waiting for connections, as before the first
    (RESULTS / "wrk").mkdir(parents=True, exist_ok=True)
    (RESULTS / "wrk" / f"{_slug(label)}.txt").write_text(done.stdout)
    result = parse_wrk(done.stdout)
    result.worker_split = split
    result.lopsided = lopsided
    result.cpu_ms_per_request = _cpu_ms_per_request(before, after, result.requests)
    return result


_MS_PER_TICK = 1000 / os.sysconf("SC_CLK_TCK")


def _cpu_ms_per_request(before: dict[int, int], after: dict[int, int], requests: int) -> float | None:
    used = sum(_used(before, after).values())
    if not requests or used <= 0:
        return None
    return used * _MS_PER_TICK / requests


def _cpu_ticks(pids: set[int]) -> dict[int, int]:
    """User + system CPU ticks of each process (Linux' /proc/<pid>/stat)."""
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks


def _used(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    """Each process's CPU ticks between two readings."""
    return {pid: after[pid] - before.get(pid, 0) for pid in after}


def _split(before: dict[int, int], after: dict[int, int]) -> tuple[int, ...]:
    """Each worker's share of the CPU the workers used between two readings, largest first.

    gunicorn's workers share one listening socket and each takes the connections it is
    awake to accept: wrk's 32 keep-alive connections may land unevenly, and a worker left
    with few of them leaves CPU unused. The table shows the split; ``wrk`` measures again
    when it is lopsided."""
    used = _used(before, after)
    total = sum(used.values())
    if total <= 0:
        return ()
    return tuple(sorted((round(100 * n / total) for n in used.values()), reverse=True))


# A measurement in which some worker did less than half of its even share of the work
# measured the other workers, not the server: wrk keeps its connections for the whole
# run, so the split it got at connect time holds throughout. It is measured again (wrk
# connects anew), at most this many times; the table says when.
LOPSIDED_RETRIES = 2


def _is_lopsided(split: tuple[int, ...]) -> bool:
    workers = int(WEB_CONCURRENCY)
    if workers < 2 or not split:
        return False
    shares = list(split) + [0] * (workers - len(split))
    return min(shares) < 100 / workers / 2


def split_note(result: WrkResult) -> str:
    if not result.worker_split:
        return ""
    note = f"workers' CPU {'/'.join(str(n) for n in result.worker_split)} %"
    if result.cpu_ms_per_request is not None:
        note += f", {result.cpu_ms_per_request:.1f} ms a request"
    if result.lopsided:
        note += f", measured again {result.lopsided}x: the load had landed on too few workers"
    return note


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
        note=split_note(result),
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


# The gunicorn master of each running server, by port (``wrk`` reads its workers' CPU).
_SERVERS: dict[int, int] = {}


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
    _SERVERS[port] = process.pid
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
        _SERVERS.pop(port, None)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


# --- RQ workers and their memory ---------------------------------------------------------

MIB = 1024 * 1024  # "MB" in the table: memory figures are in MiB


def children(pid: int) -> set[int]:
    """The processes ``pid`` forked that are still there (Linux' /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return {int(child) for child in path.read_text().split()}
    except (FileNotFoundError, ProcessLookupError):
        return set()


def work_horses(worker_pid: int) -> set[int]:
    """The work-horses of an RQ worker: RQ forks one per job, and it leads a process group
    of its own (the worker's scheduler, its other child, does not)."""
    found = set()
    for pid in children(worker_pid):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                found.add(pid)
    return found


def memory_mb(pid: int, key: str = "VmRSS") -> float | None:
    """A memory line of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``: the peak RSS) in MiB;
    None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB$", status, re.M)
    return int(match.group(1)) * 1024 / MIB if match else None


class HorseMemory:
    """The peak RSS of an RQ worker's work-horses while this runs (a context manager).

    A thread looks every ``interval`` seconds for the worker's horses and reads each one's
    ``VmHWM`` (its peak RSS since the fork, which the kernel keeps; so only growth in the
    last ``interval`` before a horse exits can be missed). A forked horse's RSS counts the
    pages it shares with the worker it was forked from.
    """

    def __init__(self, worker_pid: int, *, interval: float = 0.05) -> None:
        self.worker_pid = worker_pid
        self.interval = interval
        self.peaks: dict[int, float] = {}  # horse pid → its peak RSS seen, MiB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="horse-memory", daemon=True)

    @property
    def peak_mb(self) -> float | None:
        return max(self.peaks.values(), default=None)

    def __enter__(self) -> HorseMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            for pid in work_horses(self.worker_pid):
                peak = memory_mb(pid, "VmHWM")
                if peak is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0.0))


@contextlib.contextmanager
def worker(*, name: str, env: dict[str, str]) -> Iterator[int]:
    """``python worker.py`` as the Procfile's worker runs it (every queue, with its
    scheduler); yields its pid once it is registered in Redis, then stops it with SIGTERM
    (RQ's warm shutdown: a job under way is finished first)."""
    import redis
    from rq import Worker

    worker_name = f"bench-{name}-{secrets.token_hex(4)}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "python"), "worker.py", "--name", worker_name],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    connection = redis.Redis.from_url(env["REDIS_URL"])
    try:
        deadline = time.monotonic() + 60
        while not connection.exists(f"{Worker.redis_worker_namespace_prefix}{worker_name}"):
            if process.poll() is not None:
                raise RuntimeError(f"{name}: worker.py exited with {process.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the worker did not register within 60 s; see {log}")
            time.sleep(0.1)
        yield process.pid
    finally:
        connection.close()
        if process.poll() is None:
            horses = work_horses(process.pid)
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in horses | work_horses(process.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
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


def empty_job_queues() -> None:
    """Drop the jobs waiting in the bench Redis' queues: what earlier benchmarks left there
    (the orders bench's confirmation mails, thousands of them), which a worker started now
    would run before anything a benchmark measures."""
    import redis
    from rq import Queue

    with redis.Redis.from_url(REDIS_URL) as connection:
        for queue in Queue.all(connection=connection):
            queue.empty()  # type: ignore[no-untyped-call]  # rq leaves empty() unannotated


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

    def worker(self, name: str = "worker", **env: str) -> contextlib.AbstractContextManager[int]:
        """An RQ worker of the Storefront API (``python worker.py``, production config, the
        app's environment) on empty queues; yields its pid."""
        self.prepare_database()
        empty_job_queues()
        return worker(name=name, env=app_environment(**env))


# --- the table ---------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    """The rows, judged against their goals, as a Markdown table."""
    by_key = {row.key: row for row in rows}
    for row in rows:
        row.judge(by_key)
    # The columns of work that is not requests, only when some row has them.
    timed = any(row.seconds is not None or row.peak_rss_mb is not None for row in rows)
    extra_header, extra_rule = (" seconds | peak RSS |", "---:|---:|") if timed else ("", "")
    lines = [
        f"| benchmark | rate | p50 | p99 |{extra_header} errors | ratio | goal |",
        f"|---|---:|---:|---:|{extra_rule}---:|---:|---|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.3f}x {row.ratio_of}" if row.ratio is not None else ""
        p50 = f"{row.p50_ms:.1f} ms" if row.p50_ms is not None else ""
        p99 = f"{row.p99_ms:.1f} ms" if row.p99_ms is not None else ""
        extra = ""
        if timed:
            seconds = f"{row.seconds:.2f} s" if row.seconds is not None else ""
            peak = f"{row.peak_rss_mb:.0f} MB" if row.peak_rss_mb is not None else ""
            extra = f" {seconds} | {peak} |"
        goal = row.goal()
        if goal:
            goal = ("met: " if row.met else "**NOT met**: ") + goal
        note = f" ({row.note})" if row.note else ""
        lines.append(
            f"| {row.name}{note} | {row.rate:,.0f} {row.unit} | {p50} | {p99} |{extra}"
            f" {row.errors} | {ratio} | {goal} |"
        )
    return "\n".join(lines)


def save(rows: Sequence[Row], table: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.md"
    path.write_text(table + "\n")
    (RESULTS / f"{stamp}.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return path
