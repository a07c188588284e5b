"""Order numbers ``ORD-<year>-<6+ digits>``: unique under concurrency, gaps allowed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from app.db import db
from app.orders.models import OrderNumberCounter, order_number_seq

COUNTER = "orders"


def next_number(now: datetime) -> str:
    return f"ORD-{now.year}-{_next_value():06d}"


def _next_value() -> int:
    if db.session.get_bind().dialect.name == "postgresql":
        # nextval() never blocks and is not rolled back: concurrent orders never wait here.
        return int(db.session.execute(order_number_seq.next_value()).scalar_one())
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
