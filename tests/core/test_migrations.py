"""The migrations build exactly the schema the models describe, and run both ways."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade

from app.db import db, include_object


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
