"""Order numbers ``ORD-<year>-<6+ digits>``: unique under concurrency, gaps allowed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from app.db import db, on_postgresql
from app.orders.models import OrderNumberCounter, order_number_seq

COUNTER = "orders"
# PostgreSQL draws from a sequence: nextval() never blocks and is not rolled back, so
# concurrent orders never wait on it. A use case may select this beside what it reads
# anyway (placement does, with its count of unpaid orders): one round trip fewer.
DRAW_FROM_SEQUENCE = order_number_seq.next_value()


def format_number(now: datetime, value: int) -> str:
    return f"ORD-{now.year}-{value:06d}"


def next_number(now: datetime, *, drawn: int | None = None) -> str:
    """The next order number; ``drawn``: a value already taken from the sequence."""
    return format_number(now, drawn if drawn is not None else _next_value())


def draws_from_sequence() -> bool:
    return on_postgresql()


_NEXT_FROM_SEQUENCE = sa.select(DRAW_FROM_SEQUENCE)


def _next_value() -> int:
    if draws_from_sequence():
        return int(db.session.execute(_NEXT_FROM_SEQUENCE).scalar_one())
    # SQLite serialises writers, so a counter row is safe; create it on first use.
    updated = db.session.execute(
        sa.update(OrderNumberCounter)
        .where(OrderNumberCounter.name == COUNTER)
        .values(value=OrderNumberCounter.value + 1)
        .returning(OrderNumberCounter.value)
    ).scalar_one_or_none()
    if updated is not None:
        return int(updated)
    db.session.add(OrderNumberCounter(name=COUNTER, value=1))
    db.session.flush()
    return 1
