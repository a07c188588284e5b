"""Imports that write run one at a time, in the order they were requested: two files over the
same SKUs end as the later one says, never as a mix of the two. A dry run neither waits nor
is waited for. (The same with a real worker killed mid-import: ``test_resume.py``.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.db import db, utcnow
from app.products.transfer import cli, relay
from app.products.transfer.models import ProductImport
from tests.factories import AuthedUser
from tests.imports.support import (
    catalog,
    counts,
    csv_file,
    get_import,
    lost_import,
    quiet_for_a_while,
    start,
    upload_import,
)

Jobs = Callable[[], int]
EARLIER = csv_file("MUG-1,Mug,From the earlier file,10.00,,5,,,,", "MUG-2,Big mug,From the earlier file,12.00,,5,,,,")
LATER = csv_file("MUG-1,Mug,From the later file,20.00,,7,,,,", "MUG-2,Big mug,From the later file,22.00,,7,,,,")


def _as_the_later_file_says(app: Flask) -> None:
    products = catalog(app)
    assert {sku: (p["description"], p["price"], p["stock"]) for sku, p in products.items()} == {
        "MUG-1": ("From the later file", "20.00", 7),
        "MUG-2": ("From the later file", "22.00", 7),
    }


@pytest.mark.parametrize("earlier_status", ["queued", "running"])
def test_a_later_import_waits_until_the_earlier_one_has_ended(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, earlier_status: str
) -> None:
    """The earlier import's job was lost (Redis down when it was queued) or its worker was
    killed: it runs again only when the clock's relay queues it, after the later one was
    requested. The later one waits for it, whoever gets to the worker first."""
    earlier = lost_import(app, upload_import(client, staff, EARLIER), status=earlier_status)
    later = start(client, staff, upload_import(client, staff, LATER))["id"]
    run_jobs()
    waiting = get_import(client, staff, later)
    assert (waiting["status"], waiting["waiting_for"], waiting["attempts"]) == ("queued", str(earlier), 0)
    assert catalog(app) == {}

    with app.app_context():
        assert relay.relay() == {"requeued": 1, "failed": 0}  # the earlier one; the later one waits
    run_jobs()
    first, then = get_import(client, staff, str(earlier)), get_import(client, staff, later)
    assert (first["status"], counts(first)) == ("succeeded", (2, 0, 0, 0))
    assert (then["status"], counts(then)) == ("succeeded", (0, 2, 0, 0))
    assert first["finished_at"] <= then["started_at"]
    assert (then["waiting_for"], then["attempts"]) == (None, 1)
    assert then["started_at"] <= then["updated_at"]
    _as_the_later_file_says(app)
    with app.app_context():
        assert relay.relay() == {"requeued": 0, "failed": 0}


def test_an_import_waiting_for_one_the_relay_gives_up_on_is_queued_by_the_relay(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    """The relay fails an earlier import that kept dying (it queues nothing when it does):
    the one waiting for it is queued in the same pass."""
    earlier = lost_import(app, upload_import(client, staff, EARLIER), attempts=relay.MAX_ATTEMPTS, status="running")
    later = start(client, staff, upload_import(client, staff, LATER))["id"]
    run_jobs()
    assert get_import(client, staff, later)["status"] == "queued"
    quiet_for_a_while(app, later)
    with app.app_context():
        assert relay.relay() == {"requeued": 1, "failed": 1}
    run_jobs()
    assert get_import(client, staff, str(earlier))["status"] == "failed"
    assert get_import(client, staff, later)["status"] == "succeeded"
    _as_the_later_file_says(app)


def test_a_waiting_import_whose_wake_up_was_missed_is_queued_by_the_relay(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    """The earlier import ended just after the later one's job looked (that job still
    running, the ending one queued nothing): the relay queues the later one."""
    earlier = lost_import(app, upload_import(client, staff, EARLIER))
    later = start(client, staff, upload_import(client, staff, LATER))["id"]
    run_jobs()
    with app.app_context():
        db.session.execute(
            sa.update(ProductImport).where(ProductImport.id == earlier).values(status="failed", finished_at=utcnow())
        )
        db.session.commit()
    quiet_for_a_while(app, later)
    with app.app_context():
        assert relay.relay() == {"requeued": 1, "failed": 0}
    run_jobs()
    assert get_import(client, staff, later)["status"] == "succeeded"
    _as_the_later_file_says(app)


def test_a_dry_run_neither_waits_nor_is_waited_for(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    lost_import(app, upload_import(client, staff, EARLIER))
    dry = start(client, staff, upload_import(client, staff, LATER), dry_run=True)["id"]
    run_jobs()
    dry_run = get_import(client, staff, dry)
    assert (dry_run["status"], counts(dry_run)) == ("succeeded", (2, 0, 0, 0))


def test_an_import_does_not_wait_for_an_earlier_dry_run(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs
) -> None:
    earlier_dry_run = lost_import(app, upload_import(client, staff, EARLIER), dry_run=True)
    later = start(client, staff, upload_import(client, staff, LATER))["id"]
    run_jobs()
    assert get_import(client, staff, later)["status"] == "succeeded"
    _as_the_later_file_says(app)
    assert get_import(client, staff, str(earlier_dry_run))["status"] == "queued"


def test_the_command_line_waits_for_an_earlier_import_then_runs(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = lost_import(app, upload_import(client, staff, EARLIER))
    looks: list[float] = []

    def meanwhile(seconds: float) -> None:
        """While the command waits, the clock's relay queues the earlier import and a worker runs it."""
        looks.append(seconds)
        if len(looks) == 1:
            with app.app_context():
                assert relay.relay() == {"requeued": 1, "failed": 0}
            run_jobs()

    monkeypatch.setattr(cli.time, "sleep", meanwhile)
    path = tmp_path / "later.csv"
    path.write_bytes(LATER)
    result = app.test_cli_runner().invoke(args=["import-products", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Waiting for import {earlier}, requested earlier, to end" in result.output
    assert looks == [cli.WAIT_POLL_SECONDS]
    assert get_import(client, staff, str(earlier))["status"] == "succeeded"
    assert "succeeded; 2 rows read: 0 created, 2 updated" in result.output
    _as_the_later_file_says(app)


def test_a_command_stopped_while_waiting_ends_its_import(
    app: Flask, client: FlaskClient, staff: AuthedUser, run_jobs: Jobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while it waits: its import fails at once (later ones need not wait for it)."""
    earlier = lost_import(app, upload_import(client, staff, EARLIER))

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", interrupted)
    path = tmp_path / "later.csv"
    path.write_bytes(LATER)
    result = app.test_cli_runner().invoke(args=["import-products", str(path)])
    assert result.exit_code != 0
    monkeypatch.undo()
    with app.app_context():
        stopped = db.session.execute(sa.select(ProductImport).where(ProductImport.upload_id.is_(None))).scalar_one()
        assert (stopped.status, stopped.failure_reason) == (
            "failed",
            f"Stopped while waiting for import {earlier}; nothing was written.",
        )
    later = start(client, staff, upload_import(client, staff, LATER))["id"]
    run_jobs()
    assert get_import(client, staff, str(earlier))["status"] == "succeeded"
    assert get_import(client, staff, later)["status"] == "succeeded"
    _as_the_later_file_says(app)
