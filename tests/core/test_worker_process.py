"""``python worker.py``: the worker and the clock ride out a Redis that comes and goes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fakeredis
import pytest
import redis
from rq import Queue

from tests.support.processes import ROOT, free_port, stop, wait_until
from worker import MAINTENANCE_SECONDS, build_worker

CLOCK_REGISTRY = "rq:cron_schedulers"  # rq.cron_scheduler_registry.get_registry_key()


@contextmanager
def redis_on(port: int) -> Iterator[redis.Redis]:
    """A Redis server of this test's own on ``port``, stopped on leaving."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (apt-get install redis-server)"
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:
        wait_until(lambda: bool(client.ping()), timeout=20, what="the test's Redis", proc=proc)
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def clock_registered(server: redis.Redis) -> bool:
    return server.zscore(CLOCK_REGISTRY, "storefront-clock") is not None


@pytest.mark.services  # real processes and a Redis server of their own
def _process_env(port: int, database: Path) -> dict[str, str]:
    """A worker's or the clock's environment: a Redis on ``port``, a SQLite database."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "APP_ENV": "development",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DATABASE_URL": f"sqlite:///{database}",
        "LOG_LEVEL": "INFO",
    }


def test_the_clock_waits_for_redis_and_goes_on_after_an_outage(tmp_path: Path) -> None:
    port = free_port()
    env = _process_env(port, tmp_path / "clock.db")
    log = tmp_path / "clock.log"
    with log.open("wb") as output:
        clock = subprocess.Popen(
            [sys.executable, "worker.py", "--cron"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    text = lambda: log.read_text(errors="replace")  # noqa: E731
    try:
        # Started before Redis (a platform starts processes in any order): it waits.
        wait_until(lambda: "Redis unavailable" in text(), timeout=30, what="the clock to wait", proc=clock)
        with redis_on(port) as server:
            wait_until(lambda: clock_registered(server), timeout=60, what="the clock", proc=clock)
            assert Queue("mail", connection=server).count == 1  # the mail relay, due at once
        # Redis gone mid-run (a failover): one line, and the clock waits again.
        wait_until(lambda: "clock: Redis unavailable" in text(), timeout=90, what="the clock to notice", proc=clock)
        with redis_on(port) as server:
            wait_until(lambda: clock_registered(server), timeout=60, what="the clock again", proc=clock)
            assert clock.poll() is None
            assert stop(clock, sig=signal.SIGTERM) == 0
    finally:
        stop(clock, sig=signal.SIGKILL)
    assert "Traceback" not in text()


def test_a_worker_looks_after_itself_every_minute() -> None:
    # RQ restarts a worker's scheduler process (which a Redis outage kills, and which
    # retries need) only in its maintenance: every 10 minutes by default, once a blocking
    # dequeue of up to 405 s returns.
    connection = fakeredis.FakeRedis()  # nothing is sent: the worker is only built
    worker = build_worker([Queue("mail", connection=connection)], connection)
    assert worker.maintenance_interval == MAINTENANCE_SECONDS <= 60
    assert worker.dequeue_timeout <= MAINTENANCE_SECONDS


@pytest.mark.services  # real processes and a Redis server of their own
def test_a_worker_of_its_own_serves_only_the_queues_it_is_given(tmp_path: Path) -> None:
    """``--queues housekeeping,mail``: a worker that long imports never hold up."""
    port = free_port()
    env = _process_env(port, tmp_path / "worker.db")

    def worker(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "worker.py", "--burst", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)

    refused = worker("--queues", "mail,nope")
    assert refused.returncode == 2 and "--queues takes names of housekeeping, mail, imports, media" in refused.stderr
    with redis_on(port) as server:
        queues = {name: Queue(name, connection=server) for name in ("housekeeping", "mail", "imports")}
        for queue in queues.values():
            queue.enqueue("builtins.len", "abc")
        done = worker("--queues", "housekeeping,mail")
        assert done.returncode == 0, done.stderr
        assert [queues[name].count for name in ("housekeeping", "mail", "imports")] == [0, 0, 1]
        assert worker().returncode == 0  # every queue by default
        assert queues["imports"].count == 0
