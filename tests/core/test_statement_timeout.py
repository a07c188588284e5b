"""A request is never held longer than ``DATABASE_STATEMENT_TIMEOUT`` by the database: a
table locked by a release's migration or a long transaction costs it a 503 it can retry,
not its thread for as long as the lock is held (every thread of a web process, soon)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from tests.conftest import _service_environ
from tests.products.builders import make_product
from tests.support.processes import ROOT, http, start_gunicorn, stop


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 (loopback)
            return int(response.status), dict(response.headers), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), dict(exc.headers), bytes(exc.read())


pytestmark = pytest.mark.services  # PostgreSQL's statement_timeout; SQLite has no such wait


def test_a_request_behind_a_held_lock_is_a_503_within_the_timeout_and_the_process_stays_free(
    app: Flask, tmp_path: Path
) -> None:
    product_id = make_product(app, name="Locked Lamp", sku="LOCK-1")
    env = {k: v for k, v in _service_environ().items() if not k.startswith("PROMETHEUS_")}
    env.update(DATABASE_STATEMENT_TIMEOUT="1", CATALOG_CACHE="off", WEB_CONCURRENCY="1", GUNICORN_THREADS="2")
    proc, base = start_gunicorn(env, tmp_path / "web.log")
    try:
        with app.app_context(), db.engine.connect() as holder:
            holder.execute(sa.text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))  # as DDL takes it
            for _ in range(3):  # more requests than the process has threads
                started = time.monotonic()
                status, headers, body = _get(f"{base}/api/v1/products/{product_id}")
                elapsed = time.monotonic() - started
                assert status == 503, body
                assert json.loads(body)["error"]["code"] == "SERVICE_UNAVAILABLE"
                assert int(headers["Retry-After"]) > 0
                assert elapsed < 5, elapsed
            holder.rollback()
        status, body = http("GET", f"{base}/api/v1/products/{product_id}")
        assert status == 200 and json.loads(body)["data"]["name"] == "Locked Lamp"
    finally:
        stop(proc)


def test_flask_commands_and_the_release_are_never_bounded(app: Flask) -> None:
    """``flask`` builds the same app (``.flaskenv``: ``FLASK_APP=wsgi``): the release's
    migrations and the import and export commands run as long as they must."""
    env = {k: v for k, v in _service_environ().items() if not k.startswith("PROMETHEUS_")}
    env.pop("FLASK_SKIP_DOTENV", None)  # .flaskenv read, as on a platform
    env.update(DATABASE_STATEMENT_TIMEOUT="1")
    script = (
        "from app.extensions import db\n"
        "print('TIMEOUT', db.session.execute(db.text('SHOW statement_timeout')).scalar())\n"
    )
    shell = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "shell"],
        input=script,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "TIMEOUT 0" in shell.stdout, shell.stdout[-2000:] + shell.stderr[-2000:]
