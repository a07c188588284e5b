"""Use cases of the catalog's categories: list, read, create."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.db import db
from app.errors import NotFound
from app.pagination import Page, SortKey, paginate
from app.products.conflicts import duplicate, violated_unique
from app.products.models import Category
from app.products.slugs import free_slug, slugify

SORTABLE = {"name": Category.name, "created_at": Category.created_at}
DEFAULT_SORT = (SortKey("name"),)
SLUG_ATTEMPTS = 3


def list_(*, args: Mapping[str, Any]) -> Page[Category]:
    return paginate(sa.select(Category), args, sortable=SORTABLE, default_sort=DEFAULT_SORT, tiebreak=Category.id)


def get(*, ref: str) -> Category:
    """A category by id or slug."""
    try:
        criterion = Category.id == uuid.UUID(ref)
    except ValueError:
        criterion = Category.slug == ref
    category = db.session.scalar(sa.select(Category).where(criterion))
    if category is None:
        raise NotFound("Category not found")
    return category


def create(*, data: Mapping[str, Any]) -> Category:
    """Add a category; its slug comes from the name when not given."""
    generated = not data.get("slug")
    for attempt in range(1, SLUG_ATTEMPTS + 1):
        slug = free_slug(slugify(data["name"], fallback="category"), Category.slug) if generated else data["slug"]
        category = Category(name=data["name"], slug=slug, description=data.get("description"))
        db.session.add(category)
        try:
            db.session.commit()
        except IntegrityError as exc:
            db.session.rollback()
            field = violated_unique(exc, table="categories", fields=("slug",))
            if field == "slug" and generated and attempt < SLUG_ATTEMPTS:
                continue
            if field is None:
                raise
            raise duplicate(field, "category") from exc
        return category
    raise AssertionError("unreachable: the last attempt returns or raises")
