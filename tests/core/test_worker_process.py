"""``python worker.py``: the worker and the clock ride out a Redis that comes and goes; a
platform's SIGTERM lets the job in progress finish (or fail, to be retried); only one clock
schedules at a time."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from rq import Queue, Retry
from rq.job import Job

from app.schedule import CLOCK_LOCK_KEY
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


def clocks_registered(server: redis.Redis) -> list[str]:
    """The names of the clocks in RQ's registry (each clock has one of its own)."""
    return [name.decode() for name in server.zrange(CLOCK_REGISTRY, 0, -1)]


def clock_registered(server: redis.Redis) -> bool:
    return bool(clocks_registered(server))


def _process_env(port: int, database: Path) -> dict[str, str]:
    """A worker's or the clock's environment: a Redis on ``port``, a SQLite database."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "APP_ENV": "development",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DATABASE_URL": f"sqlite:///{database}",
        "LOG_LEVEL": "INFO",
    }


def _start_clock(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "worker.py", "--cron"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.services  # real processes and a Redis server of their own
def test_the_clock_waits_for_redis_and_goes_on_after_an_outage(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "clock.log"
    clock = _start_clock(_process_env(port, tmp_path / "clock.db"), log)
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


def _lock_holder(server: redis.Redis) -> str | None:
    holder = server.get(CLOCK_LOCK_KEY)
    return holder.decode() if holder is not None else None


@pytest.mark.services  # real processes and a Redis server of their own
def test_one_clock_schedules_at_a_time_and_another_takes_over_when_it_dies(tmp_path: Path) -> None:
    port = free_port()
    # A short lock keeps the test short; production's is CLOCK_LOCK_SECONDS' default (45 s).
    env = {**_process_env(port, tmp_path / "clock.db"), "CLOCK_LOCK_SECONDS": "6"}
    logs = {name: tmp_path / f"{name}.log" for name in ("first", "second", "third")}
    text = lambda name: logs[name].read_text(errors="replace")  # noqa: E731
    waiting = "another clock is active"
    clocks: list[subprocess.Popen[bytes]] = []
    with redis_on(port) as server:
        queues = [Queue(name, connection=server) for name in ("mail", "housekeeping", "media")]
        counts = lambda: [queue.count for queue in queues]  # noqa: E731
        try:
            first = _start_clock(env, logs["first"])
            clocks.append(first)
            wait_until(lambda: counts() == [1, 4, 1], timeout=60, what="the first clock's jobs", proc=first)
            second = _start_clock(env, logs["second"])
            clocks.append(second)
            wait_until(
                lambda: waiting in text("second") or counts() != [1, 4, 1],
                timeout=60,
                what="the second clock to wait",
                proc=second,
            )
            assert counts() == [1, 4, 1]  # the second enqueued nothing as it started
            time.sleep(7)  # past a whole lock's life: the first renews it, the second goes on waiting
            assert counts() == [1, 4, 1]  # nothing enqueued twice
            (active,) = clocks_registered(server)
            assert f":{first.pid}:" in active and _lock_holder(server) == active
            assert text("second").count(waiting) == 1  # said once, not at every try

            stop(first, sig=signal.SIGKILL)  # no release: its lock expires
            wait_until(lambda: counts() == [2, 8, 2], timeout=30, what="the second clock to take over", proc=second)
            holder = _lock_holder(server)
            assert holder is not None and f":{second.pid}:" in holder and holder in clocks_registered(server)

            # A clock that waits stops cleanly, and leaves the active one registered.
            third = _start_clock(env, logs["third"])
            clocks.append(third)
            wait_until(lambda: waiting in text("third"), timeout=60, what="the third clock to wait", proc=third)
            assert stop(third, sig=signal.SIGTERM) == 0
            assert _lock_holder(server) == holder and holder in clocks_registered(server)
            assert counts() == [2, 8, 2]

            assert stop(second, sig=signal.SIGTERM) == 0
            assert _lock_holder(server) is None  # released at once: a next clock need not wait
            assert holder not in clocks_registered(server)
        finally:
            for clock in clocks:
                stop(clock, sig=signal.SIGKILL)
    for name in logs:
        assert "Traceback" not in text(name), text(name)


def _worker_env(port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**_process_env(port, tmp_path / "worker.db"), **extra}


def _running(job: Job, worker: subprocess.Popen[bytes]) -> None:
    poll_until(lambda: job.get_status() == "started", timeout=60, what="the job to start")
    poll_until(lambda: work_horses(worker.pid), timeout=10, what="the work horse")
    time.sleep(1)  # well inside the job


@contextmanager
def _sigterm_mid_job(
    tmp_path: Path, seconds: int, *, grace: int | None = None, **enqueue: Any
) -> Iterator[tuple[Job, float]]:
    """A worker (with ``grace`` as WORKER_SHUTDOWN_GRACE_SECONDS) running a job of
    ``seconds`` (marking ``test:finished`` at its end) when every process of it gets SIGTERM,
    as a platform sends; yields the job once the worker has exited cleanly (its Redis is
    ``job.connection`` until the block ends) and the seconds the worker took to exit after
    the signal."""
    port = free_port()
    extra = {} if grace is None else {"WORKER_SHUTDOWN_GRACE_SECONDS": str(grace)}
    with (
        redis_on(port) as server,
        rq_worker(_worker_env(port, tmp_path, **extra), tmp_path / "worker.log", name=f"w-{uuid.uuid4().hex[:8]}") as w,
    ):
        job = Queue("mail", connection=server).enqueue(SLOW_JOB, seconds, "test:finished", **enqueue)
        _running(job, w)
        signal_every_process(w.pid, signal.SIGTERM)
        signalled = time.monotonic()
        assert w.wait(timeout=25) == 0
        yield job, time.monotonic() - signalled


@pytest.mark.services  # real processes and a Redis server of their own
def test_sigterm_to_every_process_lets_the_job_in_progress_finish(tmp_path: Path) -> None:
    """Heroku signals every process of a dyno (SIGKILL follows 30 s later): the work horse
    too, which RQ's plain Worker let SIGTERM kill mid-job."""
    with _sigterm_mid_job(tmp_path, 4, retry=Retry(max=3, interval=60)) as (job, _):
        assert job.connection.get("test:finished") == b"done"  # it exits once the job is done
        assert job.get_status() == "finished"
    assert "Work-horse terminated unexpectedly" not in (tmp_path / "worker.log").read_text()


@pytest.mark.services  # real processes and a Redis server of their own
def test_a_job_past_the_shutdown_grace_fails_and_is_retried(tmp_path: Path) -> None:
    with _sigterm_mid_job(tmp_path, 60, grace=2, retry=Retry(max=2, interval=600), job_timeout=300) as (job, took):
        assert 2 <= took < 20
        # Failed through RQ's failure handling: logged, and scheduled for its retry.
        queue = Queue("mail", connection=job.connection)
        assert job.get_status() == "scheduled" and job.id in queue.scheduled_job_registry.get_job_ids()
        job.refresh()
        assert job.retries_left == 1
        assert job.connection.get("test:finished") is None
    text = (tmp_path / "worker.log").read_text()
    assert f"job {job.id}: exception raised while executing" in text and "ShutDownImminentException" in text
    assert "Work-horse terminated unexpectedly" not in text


@pytest.mark.services  # real processes and a Redis server of their own
def test_a_job_keeps_its_own_timeout_during_the_shutdown_grace(tmp_path: Path) -> None:
    """RQ's HerokuWorker counts the grace with SIGALRM, which would replace the alarm of
    the job's timeout: the job would run on to the grace's end."""
    with _sigterm_mid_job(tmp_path, 60, grace=20, retry=Retry(max=2, interval=600), job_timeout=4) as (job, took):
        assert took < 12  # its timeout came 3 s after the signal, the grace 20 s
        assert job.get_status() == "scheduled"
    text = (tmp_path / "worker.log").read_text()
    assert "JobTimeoutException" in text and "ShutDownImminentException" not in text


@pytest.mark.services  # real processes and a Redis server of their own
def test_a_worker_busy_when_redis_fails_over_serves_again_once_it_is_back(tmp_path: Path) -> None:
    """RQ's loop quits when recording a job fails (Redis gone as the job ends): worker.py
    exited with it (status 1), and honcho stops every process when one exits."""
    port = free_port()
    log = tmp_path / "worker.log"
    text = lambda: log.read_text(errors="replace")  # noqa: E731
    with ExitStack() as processes:
        first_redis = ExitStack()
        processes.push(first_redis)  # stopped at the end if the test has not stopped it
        server = first_redis.enter_context(redis_on(port))
        w = processes.enter_context(rq_worker(_worker_env(port, tmp_path), log, name=f"w-{uuid.uuid4().hex[:8]}"))
        job = Queue("mail", connection=server).enqueue(SLOW_JOB, 3, "test:finished")
        _running(job, w)
        first_redis.close()  # a failover: Redis goes while the job runs, and the job ends meanwhile
        wait_until(lambda: "its loop stopped on an error" in text(), timeout=30, what="the worker to notice", proc=w)
        time.sleep(2)
        assert w.poll() is None  # waiting for Redis, not exited
        with redis_on(port) as server:  # back, empty (it keeps nothing on disk)
            after = Queue("mail", connection=server).enqueue(SLOW_JOB, 0, "test:after")
            poll_until(lambda: server.get("test:after") == b"done", timeout=90, what="a job served after the outage")
            assert after.get_status() == "finished" and w.poll() is None
            signal_every_process(w.pid, signal.SIGTERM)
            assert w.wait(timeout=30) == 0  # a platform's SIGTERM still ends it
    assert "Traceback" not in text().split("its loop stopped on an error")[-1]
