"""``Idempotency-Key`` on POST /orders (IETF draft semantics).

The key row is inserted first in the order's own transaction: a concurrent request with
the same key waits on the unique index until the first one ends. If it committed, the
stored response is replayed (or 422 if the body differs); if it is still running after
``LOCK_WAIT``, the answer is 409 ``IDEMPOTENCY_CONFLICT``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError, OperationalError

from app.db import db, on_postgresql, utcnow
from app.errors import IdempotencyConflict, IdempotencyKeyReused
from app.orders.models import IdempotencyKey

LOCK_WAIT_MS = 5000
_LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def fingerprint(payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(*, user_id: uuid.UUID, key: str, request_hash: str) -> IdempotencyKey | StoredResponse:
    """Reserve ``key`` in the current transaction, or return the response stored for it."""
    now = utcnow()
    db.session.execute(
        sa.delete(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.key == key, IdempotencyKey.expires_at <= now
        )
    )
    existing = _find(user_id, key)
    if existing is not None:
        return _replay(existing, request_hash)
    hours = int(current_app.config["IDEMPOTENCY_KEY_HOURS"])
    row = IdempotencyKey(
        user_id=user_id,
        key=key,
        request_hash=request_hash,
        response_status=0,
        response_body={},
        response_headers={},
        expires_at=now + timedelta(hours=hours),
    )
    db.session.add(row)
    postgres = on_postgresql()
    try:
        if postgres:
            db.session.execute(sa.text(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}"))
        db.session.flush()
        if postgres:
            db.session.execute(sa.text("SET LOCAL lock_timeout = DEFAULT"))
    except IntegrityError:
        db.session.rollback()  # the concurrent request committed first
        committed = _find(user_id, key)
        if committed is None:
            raise IdempotencyConflict() from None
        return _replay(committed, request_hash)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE or "locked" in str(exc.orig):
            db.session.rollback()
            raise IdempotencyConflict() from exc
        raise
    return row


def record(row: IdempotencyKey, response: StoredResponse) -> None:
    row.response_status = response.status
    row.response_body = response.body
    row.response_headers = response.headers


def purge_expired() -> int:
    result = db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def _find(user_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return db.session.scalar(
        sa.select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.key == key, IdempotencyKey.expires_at > utcnow()
        )
    )


def _replay(row: IdempotencyKey, request_hash: str) -> StoredResponse:
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused()
    if row.response_status == 0:
        raise IdempotencyConflict()
    return StoredResponse(status=row.response_status, body=dict(row.response_body), headers=dict(row.response_headers))
