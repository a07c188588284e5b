"""A client generated from the served OpenAPI document works as is, typed.

openapi-python-client generates ``storefront_client`` from ``/api/v1/openapi.json``
(any generator warning fails the test); ``mypy --strict`` checks the generated package
and ``typed_scenario.py``, which uses it the way a client application would; then the
scenario runs against the app (httpx's WSGI transport), on PostgreSQL in the services run.

``client.py``, the generator's own template, is checked too: with the pinned mypy it has
no findings, so nothing is excluded.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import create_user
from tests.support.mailbox import Mailbox

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _run(*command: str, cwd: Path) -> str:
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, app: Flask) -> Iterator[Path]:
    """The generated client package, type-checked with the scenario beside it."""
    root = tmp_path_factory.mktemp("generated")
    spec = root / "openapi.json"
    spec.write_text(json.dumps(json_of(app.test_client().get("/api/v1/openapi.json"))))
    (root / "generator.yaml").write_text("post_hooks: []\n")
    output = _run(
        str(BIN / "openapi-python-client"),
        "generate",
        "--path",
        str(spec),
        "--meta",
        "none",
        "--output-path",
        str(root / "storefront_client"),
        "--config",
        str(root / "generator.yaml"),
        cwd=root,
    )
    assert "warning" not in output.lower(), output
    shutil.copy(HERE / "typed_scenario.py", root / "typed_scenario.py")
    (root / "mypy.ini").write_text("[mypy]\nstrict = True\nwarn_unreachable = True\n")
    _run(
        str(BIN / "mypy"),
        "--config-file",
        "mypy.ini",
        "--cache-dir",
        str(root / ".mypy_cache"),
        "storefront_client",
        "typed_scenario.py",
        cwd=root,
    )
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "typed_scenario" or m.startswith("storefront_client")]:
            del sys.modules[name]


def test_every_operation_becomes_a_named_function(generated: Path) -> None:
    modules = {p.stem for p in (generated / "storefront_client" / "api").rglob("*.py") if p.stem != "__init__"}
    assert {"place_order", "cancel_order", "list_products", "login", "list_order_events"} <= modules
    assert not any(m.startswith(("get_api", "post_api")) for m in modules)


def test_the_typed_scenario_runs(
    generated: Path, app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    staff = create_user(app, role="staff")
    scenario = importlib.import_module("typed_scenario")

    def mailed_token(address: str) -> str:
        run_jobs()
        return mailbox.token_for(address)

    outcome = scenario.run(
        base_url="http://localhost",
        httpx_args={"transport": httpx.WSGITransport(app=app)},
        staff_token=staff.access_token,
        email="typed.client@example.com",
        password="Typed-Client-Passw0rd!",
        mailed_token=mailed_token,
    )
    assert outcome.order_number.startswith("ORD-")
    assert str(outcome.order_total) == "9.00"
    assert outcome.replayed_same_order and outcome.refreshed and outcome.logged_out
    assert outcome.pages_after_last == 2 and outcome.next_cursor is None
    assert outcome.event_count == 2 and outcome.final_status == "cancelled"
    me = client.get(f"/api/v1/users/{outcome.user_id}", headers=create_user(app, role="admin").headers)
    assert json_of(me)["data"]["email"] == "typed.client@example.com"
