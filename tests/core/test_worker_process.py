"""``python worker.py``: the worker and the clock ride out a Redis that comes and goes; a
platform's SIGTERM lets the job in progress finish (or fail, to be retried)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fakeredis
import pytest
import redis
from rq import Queue, Retry
from rq.job import Job

from tests.support.processes import (
    ROOT,
    free_port,
    poll_until,
    rq_worker,
    signal_every_process,
    stop,
    wait_until,
    work_horses,
)
from worker import MAINTENANCE_SECONDS, build_worker

CLOCK_REGISTRY = "rq:cron_schedulers"  # rq.cron_scheduler_registry.get_registry_key()
SLOW_JOB = "tests.support.slow_jobs.sleep_then_mark"


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


def _worker_env(port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**_process_env(port, tmp_path / "worker.db"), **extra}


def _running(job: Job, worker: subprocess.Popen[bytes]) -> None:
    poll_until(lambda: job.get_status() == "started", timeout=60, what="the job to start")
    poll_until(lambda: work_horses(worker.pid), timeout=10, what="the work horse")
    time.sleep(1)  # well inside the job


@pytest.mark.services  # real processes and a Redis server of their own
def test_sigterm_to_every_process_lets_the_job_in_progress_finish(tmp_path: Path) -> None:
    """Heroku signals every process of a dyno (SIGKILL follows 30 s later): the work horse
    too, which RQ's plain Worker let SIGTERM kill mid-job."""
    port = free_port()
    log = tmp_path / "worker.log"
    with redis_on(port) as server, rq_worker(_worker_env(port, tmp_path), log, name=f"w-{uuid.uuid4().hex[:8]}") as w:
        job = Queue("mail", connection=server).enqueue(SLOW_JOB, 4, "test:finished", retry=Retry(max=3, interval=60))
        _running(job, w)
        signal_every_process(w.pid, signal.SIGTERM)
        assert w.wait(timeout=25) == 0  # it exits once the job is done
        assert server.get("test:finished") == b"done"
        assert job.get_status() == "finished"
    assert "Work-horse terminated unexpectedly" not in log.read_text()


@pytest.mark.services  # real processes and a Redis server of their own
def test_a_job_past_the_shutdown_grace_fails_and_is_retried(tmp_path: Path) -> None:
    port = free_port()
    env = _worker_env(port, tmp_path, WORKER_SHUTDOWN_GRACE_SECONDS="2")
    log = tmp_path / "worker.log"
    with redis_on(port) as server, rq_worker(env, log, name=f"w-{uuid.uuid4().hex[:8]}") as w:
        queue = Queue("mail", connection=server)
        job = queue.enqueue(SLOW_JOB, 60, "test:finished", retry=Retry(max=2, interval=600), job_timeout=300)
        _running(job, w)
        signal_every_process(w.pid, signal.SIGTERM)
        signalled = time.monotonic()
        assert w.wait(timeout=25) == 0
        assert 2 <= time.monotonic() - signalled < 20
        # Failed through RQ's failure handling: logged, and scheduled for its retry.
        assert job.get_status() == "scheduled" and job.id in queue.scheduled_job_registry.get_job_ids()
        job.refresh()
        assert job.retries_left == 1
        assert server.get("test:finished") is None
    text = log.read_text()
    assert f"job {job.id}: exception raised while executing" in text and "ShutDownImminentException" in text
    assert "Work-horse terminated unexpectedly" not in text


@pytest.mark.services  # real processes and a Redis server of their own
def test_a_job_keeps_its_own_timeout_during_the_shutdown_grace(tmp_path: Path) -> None:
    """RQ's HerokuWorker counts the grace with SIGALRM, which would replace the alarm of
    the job's timeout: the job would run on to the grace's end."""
    port = free_port()
    env = _worker_env(port, tmp_path, WORKER_SHUTDOWN_GRACE_SECONDS="20")
    log = tmp_path / "worker.log"
    with redis_on(port) as server, rq_worker(env, log, name=f"w-{uuid.uuid4().hex[:8]}") as w:
        queue = Queue("mail", connection=server)
        job = queue.enqueue(SLOW_JOB, 60, "test:finished", retry=Retry(max=2, interval=600), job_timeout=4)
        _running(job, w)
        signal_every_process(w.pid, signal.SIGTERM)
        signalled = time.monotonic()
        assert w.wait(timeout=25) == 0
        assert time.monotonic() - signalled < 12  # its timeout came 3 s after the signal, the grace 20 s
        assert job.get_status() == "scheduled"
    assert "JobTimeoutException" in log.read_text() and "ShutDownImminentException" not in log.read_text()
