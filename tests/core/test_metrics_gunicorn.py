"""/metrics under the Procfile's gunicorn: every worker counted, with nothing set by hand."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.processes import http, start_gunicorn, stop

LIVE_SERIES = re.compile(r'^http_requests_total\{endpoint="/health/live",method="GET",status="200"\} (\S+)$', re.M)


def _gunicorn(tmp_path: Path, log: Path, **extra_env: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}",
        "REDIS_URL": "",
        "TEST_SERVICES": "",
        "WEB_CONCURRENCY": "2",
        **extra_env,
    }
    return start_gunicorn(env, log)


def _live_count(base: str) -> float:
    status, body = http("GET", f"{base}/metrics")
    assert status == 200, body
    match = LIVE_SERIES.search(body.decode())
    return float(match.group(1)) if match else 0.0


def _pids_that_served_live(log: Path) -> list[int]:
    pids = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "storefront.access" and entry.get("path") == "/health/live":
                pids.append(entry["pid"])
    return pids


def _hit_live(base: str, times: int) -> None:
    # New connection per request, several at once: the kernel spreads them over the workers.
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: http("GET", f"{base}/health/live")[0], range(times)))
    assert statuses == [200] * times


def test_two_workers_are_summed_and_survive_a_worker_restart(tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    proc, base = _gunicorn(tmp_path, log)
    try:
        _hit_live(base, 60)
        first = _pids_that_served_live(log)
        assert len(first) == 60
        for _ in range(4):  # whichever worker answers the scrape
            assert _live_count(base) == 60

        # Kill a worker that served (which one the kernel picked is up to it); gunicorn starts
        # another. What the dead one counted stays in the sum, beside what the others count next.
        os.kill(first[0], signal.SIGKILL)
        _hit_live(base, 60)
        served_by = _pids_that_served_live(log)
        assert len(served_by) == 120
        assert len(set(served_by)) >= 2, "the later requests were served by another process"
        for _ in range(4):
            assert _live_count(base) == 120
        assert "Prometheus multiprocess folder: " in log.read_text()
    finally:
        assert stop(proc) == 0, log.read_text()
    folder = re.search(r"Prometheus multiprocess folder: (\S+)", log.read_text())
    assert folder is not None and not Path(folder.group(1)).exists(), "the temporary folder is removed at exit"


STALE_SAMPLES = """
from prometheus_client import CollectorRegistry, Counter
c = Counter("http_requests_total", "x", ["method", "endpoint", "status"], registry=CollectorRegistry())
c.labels("GET", "/health/live", "200").inc(1000)
"""


def test_operator_folder_is_emptied_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "prom"
    folder.mkdir()
    # Samples a previous run left behind in the folder the operator configured.
    subprocess.run(
        [sys.executable, "-c", STALE_SAMPLES], env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}, check=True
    )
    assert list(folder.glob("counter_*.db"))
    log = tmp_path / "gunicorn.log"
    proc, base = _gunicorn(tmp_path, log, PROMETHEUS_MULTIPROC_DIR=str(folder))
    try:
        _hit_live(base, 5)
        assert _live_count(base) == 5
    finally:
        assert stop(proc) == 0, log.read_text()
    assert folder.is_dir(), "an operator's folder is kept"
