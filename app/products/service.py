"""Use cases of the catalog's products that write: create, update, delete (reads: ``reads``).

Only live (not soft-deleted) products exist for anyone. Writes are guarded by optimistic
locking on ``Product.version`` (SQLAlchemy's version counter) and by the unique indexes on
SKU and slug, whose violations become a 409 naming the field; each one tells the catalog
cache (``catalog_changed``) before it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from app.db import commit_keeping_loaded, db, utcnow
from app.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from app.products.cache import catalog_changed
from app.products.conflicts import duplicate, violated_unique
from app.products.etags import etag_of, if_match_passes
from app.products.models import Category, Product
from app.products.slugs import commit_with_slug
from app.uploads import service as uploads_service

UNIQUE_FIELDS = ("sku", "slug")
# Plain columns a create/update copies from the validated body.
SCALAR_FIELDS = (
    "sku",
    "name",
    "slug",
    "description",
    "price",
    "compare_at_price",
    "stock",
    "low_stock_threshold",
    "is_active",
    "image_upload_id",
)
IMAGE_NOT_READY = "Must be a ready upload of purpose product_image."


def create(*, data: Mapping[str, Any]) -> Product:
    """Add a product; its slug comes from the name when not given."""
    categories = _categories(data.get("category_ids") or [])
    fields = {name: data[name] for name in SCALAR_FIELDS if name in data and name != "slug"}
    _check_prices(fields["price"], fields.get("compare_at_price"))
    _check_image(fields.get("image_upload_id"))

    def build(slug: str) -> Product:
        catalog_changed()
        return Product(**fields, slug=slug, categories=categories)

    return commit_with_slug(
        build,
        name=data["name"],
        slug=data.get("slug"),
        column=Product.slug,
        table="products",
        unique_fields=UNIQUE_FIELDS,
        what="product",
        live=[_live()],
    )


def update(*, ref: str, data: Mapping[str, Any], if_match: str | None) -> Product:
    """Change the fields in ``data`` (all of them for PUT); every change bumps the version."""
    product = _for_write(ref, if_match)
    # Every query runs before the first change, so that no autoflush writes half an update.
    categories = _categories(data["category_ids"]) if "category_ids" in data else None
    _check_prices(data.get("price", product.price), data.get("compare_at_price", product.compare_at_price))
    if "image_upload_id" in data and data["image_upload_id"] != product.image_upload_id:
        _check_image(data["image_upload_id"])
    changed = False
    for name in SCALAR_FIELDS:
        if name in data and getattr(product, name) != data[name]:
            setattr(product, name, data[name])
            changed = True
    if categories is not None and {c.id for c in categories} != {c.id for c in product.categories}:
        product.categories = categories
        changed = True
    if not changed:
        return product
    # An explicit column change makes the row dirty even when only categories changed,
    # so that the UPDATE (and its version check and bump) always runs.
    product.updated_at = utcnow()
    catalog_changed()
    _commit_write(if_match)
    return product


def delete(*, ref: str, if_match: str | None) -> None:
    """Soft delete: the product disappears for everyone; its SKU and slug become free."""
    product = _for_write(ref, if_match)
    product.deleted_at = product.updated_at = utcnow()
    product.image_upload_id = None  # only live products hold their image (and keep it from deletion)
    catalog_changed()
    _commit_write(if_match)


# --- helpers (they flush at most; the use cases above commit) -------------------------


def _live() -> sa.ColumnElement[bool]:
    return Product.deleted_at.is_(None)


def _as_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def _for_write(ref: str, if_match: str | None) -> Product:
    """A live product by id or slug (writers see inactive ones), checked against ``If-Match``.

    Without ``If-Match`` the client asked to change the product as it is now: its row is
    locked until the commit, so a sale landing meanwhile waits instead of failing the
    write (the version check). With one, it is changed only as the client saw it: optimistic,
    a 412 if anything (a sale too: stock is part of it) changed it since."""
    product_id = _as_uuid(ref)
    stmt = sa.select(Product).options(selectinload(Product.categories)).where(_live())
    stmt = stmt.where(Product.id == product_id) if product_id else stmt.where(Product.slug == ref)
    if if_match is None:
        stmt = stmt.with_for_update(of=Product)
    product = db.session.scalar(stmt)
    if product is None:
        raise NotFound("Product not found")
    if not if_match_passes(if_match, product):
        raise PreconditionFailed(headers={"ETag": etag_of(product)})
    return product


def _categories(ids: Sequence[uuid.UUID]) -> list[Category]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = {c.id: c for c in db.session.scalars(sa.select(Category).where(Category.id.in_(wanted)))}
    missing = [str(i) for i in wanted if i not in found]
    if missing:
        message = f"Unknown category id(s): {', '.join(missing)}."
        raise ValidationFailed(details=[{"field": "category_ids", "message": message}])
    return [found[i] for i in wanted]


def _check_prices(price: Decimal, compare_at_price: Decimal | None) -> None:
    if compare_at_price is not None and compare_at_price < price:
        message = "Must be greater than or equal to price."
        raise ValidationFailed(details=[{"field": "compare_at_price", "message": message}])


def _check_image(upload_id: uuid.UUID | None) -> None:
    """``image_upload_id`` must name a ready product image (a 422 naming the field)."""
    if upload_id is not None and not uploads_service.is_ready_product_image(upload_id):
        raise ValidationFailed(details=[{"field": "image_upload_id", "message": IMAGE_NOT_READY}])


def _commit_write(if_match: str | None) -> None:
    """Commit an update; a concurrent change (version moved) or a duplicate is refused.

    The written product is kept as committed (not reloaded): its answer and ETag carry the
    version this request wrote, never a later writer's (whose changes its client has not
    seen, and would overwrite with that ETag as If-Match)."""
    try:
        commit_keeping_loaded()
    except StaleDataError as exc:
        db.session.rollback()
        # The UPDATE's ``WHERE version = :seen`` matched nothing: someone else won.
        if if_match is not None:
            raise PreconditionFailed() from exc
        raise Conflict("The product was changed by another request; reload it and retry") from exc
    except IntegrityError as exc:
        db.session.rollback()
        field = violated_unique(exc, table="products", fields=UNIQUE_FIELDS)
        if field is None:
            raise
        raise duplicate(field, "product") from exc
