"""Slugs generated from names: ASCII, lower case, hyphenated, unique among live rows."""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from app.db import db, escape_like
from app.products.conflicts import duplicate, violated_unique
from app.products.models import SLUG_MAX

T = TypeVar("T")
# Paths of their own under /products/: no product may be reached by these as its slug.
RESERVED_SLUGS = frozenset({"imports", "exports"})
# A generated slug may lose a race to a concurrent create; it is regenerated this often:
# the next free one at first, then (creates of one name arriving together, each round won
# by one of them) the next free one with a random suffix, which no other create picks.
SLUG_ATTEMPTS = 5
_PLAIN_ATTEMPTS = 2

# Room for a "-<n>" suffix when the plain slug is taken.
_BASE_MAX = SLUG_MAX - 10
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text: str, *, fallback: str) -> str:
    """``"Crème Brûlée (XL)"`` → ``"creme-brulee-xl"``; ``fallback`` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_ALNUM.sub("-", ascii_text.lower()).strip("-")[:_BASE_MAX].rstrip("-")
    if not slug:
        return fallback
    if slug in RESERVED_SLUGS or _uuid_shaped(slug):
        # /products/{id_or_slug} would read it as an id, or as /products/imports itself.
        return f"{fallback}-{slug}"[:_BASE_MAX].rstrip("-")
    return slug


def _uuid_shaped(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def free_slug(base: str, column: InstrumentedAttribute[str], *where: sa.ColumnElement[bool]) -> str:
    """``base``, or ``base-2``, ``base-3``… — the first one no row (matching ``where``) has.

    Two concurrent requests may still pick the same one; the unique index decides and the
    caller retries.
    """
    taken = set(
        db.session.scalars(
            sa.select(column).where(sa.or_(column == base, column.like(f"{escape_like(base)}-%", escape="\\")), *where)
        )
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _generated(
    name: str, what: str, attempt: int, column: InstrumentedAttribute[str], live: Sequence[sa.ColumnElement[bool]]
) -> str:
    base = slugify(name, fallback=what)
    if attempt > _PLAIN_ATTEMPTS:
        base = f"{base[: _BASE_MAX - 7].rstrip('-')}-{secrets.token_hex(3)}"
    return free_slug(base, column, *live)


def commit_with_slug(
    build: Callable[[str], T],
    *,
    name: str,
    slug: str | None,
    column: InstrumentedAttribute[str],
    table: str,
    unique_fields: Sequence[str],
    what: str,
    live: Sequence[sa.ColumnElement[bool]] = (),
) -> T:
    """Add ``build(slug)`` and commit; the slug is ``slug`` or one generated from ``name``.

    A duplicate unique field is a 409 naming it (the unique index decides, so this holds
    under concurrency too); a generated slug that loses a race is generated again.
    """
    for attempt in range(1, SLUG_ATTEMPTS + 1):
        candidate = slug or _generated(name, what, attempt, column, live)
        row = build(candidate)
        db.session.add(row)
        try:
            db.session.commit()
        except IntegrityError as exc:
            db.session.rollback()
            field = violated_unique(exc, table=table, fields=unique_fields)
            if field == "slug" and not slug and attempt < SLUG_ATTEMPTS:
                continue
            if field is None:
                raise
            raise duplicate(field, what) from exc
        return row
    raise AssertionError("unreachable: the last attempt returns or raises")
