"""Schemathesis, with every one of its checks, over the whole served document.

The CLI (``st run``) runs all four phases — examples, coverage, fuzzing and the stateful
phase (links inferred from the document) — against the app served on loopback, positive
and negative data, once with an admin's token and once with a customer's, rate limits
off. Its exit status is the verdict: 0 failures. ``schemathesis_hooks.py`` lists, with
reasons, the only answers accepted that a check would otherwise flag: schema-valid
requests refused by a rule the document states in words (business state, rules across
fields). Three operations are left out, because they end the session whose token the
run uses: ``logout``, ``logout_all`` and ``revoke_session`` (tests/auth covers them).

``SCHEMATHESIS_MAX_EXAMPLES`` (default 40) and ``SCHEMATHESIS_SEED`` tune a deeper or
different run; the default seed is fixed so that CI is repeatable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app.extensions import limiter
from tests.factories import create_user

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "40")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261123")
LEFT_OUT = ("logout", "logout_all", "revoke_session")


@pytest.fixture(scope="module")
def served(app: Flask) -> Iterator[str]:
    """The suite's app on a free port, rate limits off (the limiter is shared: restored after)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    enabled, limiter.enabled = limiter.enabled, False
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        limiter.enabled = enabled


@pytest.mark.parametrize("role", ["admin", "customer"])
def test_schemathesis_finds_nothing(app: Flask, served: str, role: str, tmp_path: Path) -> None:
    base_url = served
    token = create_user(app, role=role).access_token
    command = [
        str(Path(sys.executable).parent / "st"),
        "--no-color",
        "run",
        f"{base_url}/api/v1/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "1",  # CPython 3.11's ast.parse is not thread-safe, and hypothesis calls it
        *(arg for operation_id in LEFT_OUT for arg in ("--exclude-operation-id", operation_id)),
        "--exclude-path-regex",
        "/_test/",
        "--header",
        f"Authorization: Bearer {token}",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.contract.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-20_000:]
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    tested = [
        op["operationId"]
        for path, ops in spec["paths"].items()
        for op in ops.values()
        if isinstance(op, dict) and "/_test/" not in path and op["operationId"] not in LEFT_OUT
    ]
    assert f"{len(tested)} selected" in report, report[:2_000]  # every operation but the ones left out
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in report, report[-5_000:]
