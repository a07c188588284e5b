"""Use cases of the catalog's categories: list, read, create."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from app.db import db
from app.errors import NotFound
from app.pagination import Page, SortKey, paginate
from app.products.models import Category
from app.products.slugs import commit_with_slug

SORTABLE = {"name": Category.name, "created_at": Category.created_at}
DEFAULT_SORT = (SortKey("name"),)


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
    return commit_with_slug(
        lambda slug: Category(name=data["name"], slug=slug, description=data.get("description")),
        name=data["name"],
        slug=data.get("slug"),
        column=Category.slug,
        table="categories",
        unique_fields=("slug",),
        what="category",
    )
