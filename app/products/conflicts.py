"""Which unique field an ``IntegrityError`` is about, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from app.errors import Conflict


def violated_unique(error: IntegrityError, *, table: str, fields: Sequence[str]) -> str | None:
    """The field of ``table`` whose unique index/constraint ``uq_<table>_<field>`` refused
    the row, or None when the error is about something else."""
    diag = getattr(error.orig, "diag", None)  # psycopg names the constraint
    constraint = getattr(diag, "constraint_name", None)
    if isinstance(constraint, str):
        return next((f for f in fields if constraint == f"uq_{table}_{f}"), None)
    # SQLite: "UNIQUE constraint failed: products.sku"
    message = str(error.orig)
    if "UNIQUE constraint failed" not in message:
        return None
    return next((f for f in fields if f"{table}.{f}" in message), None)


_LABELS = {"sku": "SKU"}


def duplicate(field: str, what: str) -> Conflict:
    """A 409 whose details name the duplicated field."""
    message = f"A {what} with this {_LABELS.get(field, field)} already exists"
    return Conflict(message, details=[{"field": field, "message": f"{message}."}])
