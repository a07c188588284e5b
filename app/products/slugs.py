"""Slugs generated from names: ASCII, lower case, hyphenated, unique among live rows."""

from __future__ import annotations

import re
import unicodedata
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from app.db import db
from app.products.models import SLUG_MAX

# Room for a "-<n>" suffix when the plain slug is taken.
_BASE_MAX = SLUG_MAX - 10
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text: str, *, fallback: str) -> str:
    """``"Crème Brûlée (XL)"`` → ``"creme-brulee-xl"``; ``fallback`` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_ALNUM.sub("-", ascii_text.lower()).strip("-")[:_BASE_MAX].rstrip("-")
    if not slug:
        return fallback
    try:
        uuid.UUID(slug)
    except ValueError:
        return slug
    # A UUID-shaped slug would be read as an id by /products/{id_or_slug}.
    return f"{fallback}-{slug}"[:_BASE_MAX].rstrip("-")


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
