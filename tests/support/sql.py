"""Recording the SQL statements a request runs (lists must not grow with page size; a
placement writes each table once)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.db import db


@contextmanager
def recorded_statements(app: Flask, *kinds: str) -> Iterator[list[str]]:
    """The statements run meanwhile whose first word is one of ``kinds`` (``"INSERT"``)."""
    with app.app_context():
        engine = db.engine
    statements: list[str] = []
    prefixes = tuple(kind.upper() for kind in kinds)

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(prefixes):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def count_selects(app: Flask) -> AbstractContextManager[list[str]]:
    return recorded_statements(app, "SELECT", "WITH")
