"""The migrations build exactly the schema the models describe, and run both ways."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy.exc import OperationalError

from app.db import db, include_object

ROOT = Path(__file__).resolve().parents[2]


def test_models_and_migrations_agree(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as conn:
        # As `flask db migrate` compares them (app/__init__.py passes the same filter).
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include_object})
        diff = [d for d in compare_metadata(context, db.metadata) if not _is_test_table(d)]
    assert diff == [], f"models and migrations differ; run flask db migrate: {diff}"


def _is_test_table(diff: object) -> bool:
    text = repr(diff)
    return "test_widgets" in text


def test_downgrade_to_base_and_upgrade_again(app: Flask) -> None:
    with app.app_context():
        downgrade(revision="base")
        upgrade()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() is not None


@pytest.mark.services
def test_a_release_never_queues_the_site_behind_a_lock_it_waits_for(app: Flask) -> None:
    """On PostgreSQL a migration waits ``MIGRATION_LOCK_TIMEOUT`` for each lock, and the
    whole run (one transaction) is tried ``MIGRATION_LOCK_ATTEMPTS`` times; then the release
    fails, having changed nothing. Here a session holds ``alembic_version`` (which every
    migration writes) as a long export holds a table."""
    with app.app_context():
        previous = _revision()
        downgrade(revision="-1")
        app.config.update(MIGRATION_LOCK_TIMEOUT=1, MIGRATION_LOCK_ATTEMPTS=2)
        try:
            with db.engine.connect() as holder:
                holder.exec_driver_sql("LOCK TABLE alembic_version IN SHARE MODE")
                started = time.monotonic()
                with pytest.raises(OperationalError) as excinfo:
                    upgrade()
                waited = time.monotonic() - started
                assert getattr(excinfo.value.orig, "sqlstate", None) == "55P03"  # lock_not_available
                assert 2 <= waited < 15, waited  # two waits of a second and a pause, not forever
                holder.rollback()
            assert _revision() != previous  # rolled back: still one step down
            upgrade()  # nothing in the way now
            assert _revision() == previous
        finally:
            app.config.update(MIGRATION_LOCK_TIMEOUT=5, MIGRATION_LOCK_ATTEMPTS=3)
            upgrade()


@pytest.mark.services
def test_two_releases_at_once_run_one_after_the_other(app: Flask) -> None:
    """A second ``flask db upgrade`` waits for the first (an advisory lock), then finds
    nothing to do; without it both ran the same DDL and one failed half way."""
    with app.app_context():
        head = _revision()
        downgrade(revision="-1")
        outcome: list[BaseException | None] = []
        try:
            with db.engine.connect() as first:
                first.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
                second = threading.Thread(target=_upgrade_in, args=(app, outcome))
                second.start()
                time.sleep(1.5)
                assert second.is_alive() and _revision() != head  # waiting its turn
                first.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                first.commit()
                second.join(timeout=60)
            assert outcome == [None]
            assert _revision() == head
        finally:
            upgrade()


# migrations/env.py's advisory lock key (env.py runs inside Alembic: read, not imported).
MIGRATION_LOCK_KEY = int(
    re.search(r"^MIGRATION_LOCK_KEY = (0x[0-9A-F]+)", (ROOT / "migrations" / "env.py").read_text(), re.M).group(1),  # type: ignore[union-attr]
    16,
)


def _upgrade_in(app: Flask, outcome: list[BaseException | None]) -> None:
    try:
        with app.app_context():
            upgrade()
        outcome.append(None)
    except BaseException as exc:  # reported by the test
        outcome.append(exc)


def _revision() -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
