"""Real server processes for tests: free ports, waiting for them, stopping them cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tool(name: str) -> str:
    """An executable of this project's virtualenv (gunicorn, honcho, flask)."""
    path = VENV_BIN / name
    return str(path) if path.exists() else name


def http(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode} first")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_http(url: str, *, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    wait_until(lambda: http("GET", url)[0] == 200, timeout=timeout, what=url, proc=proc)


def stop(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal the process group (started with start_new_session=True) and wait."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return int(proc.returncode)


def run_probe(source: str, *args: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Run ``source`` in a fresh interpreter (one app per process: flask-smorest and
    flask-limiter bind one app per extension object), with the repository as its first
    argument, and return the JSON it printed after ``RESULT``."""
    proc = subprocess.run(
        [sys.executable, "-c", source, str(ROOT), *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=ROOT,
        timeout=120,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT"))
    result["_stdout"] = proc.stdout
    return result


def start_gunicorn(
    env: Mapping[str, str], log: Path, *, target: str = "wsgi:app", ready_path: str = "/health/ready"
) -> tuple[subprocess.Popen[bytes], str]:
    """The Procfile's web process (gunicorn with gunicorn.conf.py; ``target``: the app it
    serves), bound to loopback on a free port, its output in ``log``; returns it and its
    base URL once ``ready_path`` answers 200 (the checks never count a request to
    ``/health/live``)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update(env)
    environ["PORT"] = str(port)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [tool("gunicorn"), target, "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    wait_for_http(base + ready_path, proc=proc)
    return proc, base


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def process_tree(pid: int) -> set[int]:
    """``pid`` and every process under it, whatever process group each leads."""
    found = {pid}
    for child in children(pid):
        found |= process_tree(child)
    return found


def signal_every_process(pid: int, sig: int) -> None:
    """What a platform does at a restart (Heroku signals every process of the dyno): ``sig``
    to ``pid`` and each process under it, RQ's work horse (in a process group of its own)
    included."""
    for each in sorted(process_tree(pid), reverse=True):
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, sig)


def work_horses(worker_pid: int) -> set[int]:
    """RQ's work-horse leads a process group of its own (the scheduler process does not)."""
    found = set()
    for pid in children(worker_pid):
        try:
            if os.getpgid(pid) == pid:
                found.add(pid)
        except ProcessLookupError:
            pass
    return found


@contextlib.contextmanager
def rq_worker(env: Mapping[str, str], log: Path, *, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python worker.py`` with ``env``, its output in ``log``; killed (with its children) after."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "worker.py", "--name", name],
            cwd=ROOT,
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            # Its scheduler (for retries) is a child process: started before any job is.
            poll_until(lambda: children(process.pid), timeout=30, what="the worker and its scheduler")
            yield process
        finally:
            for pid in children(process.pid):
                os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait(timeout=30)


def poll_until(condition: Callable[[], T], *, timeout: float, what: str) -> T:
    """The first truthy value of ``condition()``, polled every 50 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
