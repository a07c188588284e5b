"""Local runs of the Procfile's processes: the web server and the worker read a ``.env``
as ``flask`` commands do, and without secrets the web server's workers share one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flask import Flask

from tests.conftest import _service_environ
from tests.factories import DEFAULT_PASSWORD, create_user
from tests.support.processes import ROOT, http, start_gunicorn, stop


def test_without_secrets_every_web_worker_accepts_the_tokens_of_the_others(app: Flask, tmp_path: Path) -> None:
    """Each worker made a random secret of its own: a token from one was a 401 at the other."""
    user = create_user(app)
    env = {k: v for k, v in _service_environ().items() if not k.startswith("PROMETHEUS_")}
    for name in ("SECRET_KEY", "JWT_SECRET_KEY", "TEST_REDIS_URL"):
        env.pop(name, None)
    env.update(APP_ENV="development", DATABASE_URL=env.pop("TEST_DATABASE_URL"), REDIS_URL="")
    env.update(WEB_CONCURRENCY="3", GUNICORN_THREADS="1", MAIL_URL="console")
    proc, base = start_gunicorn(env, tmp_path / "web.log", ready_path="/health/live")
    try:
        body = json.dumps({"email": user.email, "password": DEFAULT_PASSWORD}).encode()
        status, raw = http("POST", base + "/api/v1/auth/login", body=body, headers={"Content-Type": "application/json"})
        assert status == 200, raw
        token = json.loads(raw)["data"]["access_token"]
        me = {"Authorization": f"Bearer {token}", "Connection": "close"}  # each request a new connection
        statuses = []
        for _ in range(200):  # until more than one worker has answered
            statuses.append(http("GET", base + "/api/v1/users/me", headers=me)[0])
            if len(statuses) >= 24 and len(_answering_pids(tmp_path / "web.log")) >= 2:
                break
        assert statuses == [200] * len(statuses)
        assert len(_answering_pids(tmp_path / "web.log")) >= 2  # tokens crossed between workers
    finally:
        stop(proc)
    assert "SECRET_KEY is not set: a random one for this run" in (tmp_path / "web.log").read_text()


def _answering_pids(log: Path) -> set[int]:
    """The worker processes whose access lines show a /users/me request."""
    pids = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"path": "/api/v1/users/me"' in line:
            pids.add(int(json.loads(line)["pid"]))
    return pids


def test_the_web_server_and_the_worker_read_a_dot_env_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SECRET_KEY=from-dot-env\nLOG_LEVEL=WARNING\n")
    script = (
        f"import os, sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from config import load_local_env\n"
        "load_local_env()\n"
        "print(os.environ.get('SECRET_KEY'), os.environ.get('LOG_LEVEL'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "LOG_LEVEL", "FLASK_SKIP_DOTENV")}
    read = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert read.stdout.split() == ["from-dot-env", "WARNING"], read.stderr
    env["LOG_LEVEL"] = "ERROR"
    read = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert read.stdout.split() == ["from-dot-env", "ERROR"], read.stderr
    env["FLASK_SKIP_DOTENV"] = "1"
    read = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert read.stdout.split() == ["None", "ERROR"], read.stderr
    for module in ("wsgi.py", "worker.py", "gunicorn.conf.py"):
        assert "load_local_env()" in (ROOT / module).read_text(), module
