"""Use cases of the catalog's categories that write: create (reads: ``reads``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.products.cache import catalog_changed
from app.products.models import Category
from app.products.slugs import commit_with_slug


def create(*, data: Mapping[str, Any]) -> Category:
    """Add a category; its slug comes from the name when not given."""

    def build(slug: str) -> Category:
        catalog_changed()
        return Category(name=data["name"], slug=slug, description=data.get("description"))

    return commit_with_slug(
        build,
        name=data["name"],
        slug=data.get("slug"),
        column=Category.slug,
        table="categories",
        unique_fields=("slug",),
        what="category",
    )
