"""Use cases of the catalog's products: read, list, create, update, delete.

Visibility: only live (not soft-deleted) products exist for anyone; only active ones for
viewers without ``products:write``. Writes are guarded by optimistic locking on
``Product.version`` (SQLAlchemy's version counter) and by the unique indexes on SKU and
slug, whose violations become a 409 naming the field.
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

from app.db import db, escape_like, utcnow
from app.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from app.pagination import Page, SortKey, paginate
from app.permissions import Principal
from app.products.conflicts import duplicate, violated_unique
from app.products.etags import etag_of, if_match_passes
from app.products.models import Category, Product
from app.products.permissions import sees_inactive
from app.products.slugs import commit_with_slug
from app.uploads import service as uploads_service

SORTABLE = {"name": Product.name, "price": Product.price, "created_at": Product.created_at}
DEFAULT_SORT = (SortKey("created_at", descending=True),)
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


def get(*, ref: str, viewer: Principal | None) -> Product:
    """A product by id or slug, as ``viewer`` may see it."""
    stmt = _visible(viewer).options(selectinload(Product.categories))
    product_id = _as_uuid(ref)
    stmt = stmt.where(Product.id == product_id) if product_id else stmt.where(Product.slug == ref)
    product = db.session.scalar(stmt)
    if product is None:
        raise NotFound("Product not found")
    return product


def list_(*, args: Mapping[str, Any], viewer: Principal | None) -> Page[Product]:
    """One page of products matching the filters in ``args``, in either pagination style."""
    stmt = _visible(viewer).options(selectinload(Product.categories))
    if "is_active" in args:
        if not sees_inactive(viewer):
            raise ValidationFailed(details=[{"field": "is_active", "message": "Only staff may filter by is_active."}])
        stmt = stmt.where(Product.is_active == sa.literal(bool(args["is_active"])))
    if args.get("q"):
        pattern = f"%{escape_like(args['q'])}%"
        # ILIKE on PostgreSQL (served by the trigram index), lower() LIKE lower() elsewhere.
        stmt = stmt.where(
            sa.or_(*(column.ilike(pattern, escape="\\") for column in (Product.name, Product.sku, Product.description)))
        )
    if "category" in args:
        stmt = stmt.where(Product.categories.any(Category.slug == args["category"]))
    if args.get("min_price") is not None:
        stmt = stmt.where(Product.price >= args["min_price"])
    if args.get("max_price") is not None:
        stmt = stmt.where(Product.price <= args["max_price"])
    if "in_stock" in args:
        stmt = stmt.where(Product.stock > 0 if args["in_stock"] else Product.stock == 0)
    return paginate(stmt, args, sortable=SORTABLE, default_sort=DEFAULT_SORT, tiebreak=Product.id)


def create(*, data: Mapping[str, Any]) -> Product:
    """Add a product; its slug comes from the name when not given."""
    categories = _categories(data.get("category_ids") or [])
    fields = {name: data[name] for name in SCALAR_FIELDS if name in data and name != "slug"}
    _check_prices(fields["price"], fields.get("compare_at_price"))
    _check_image(fields.get("image_upload_id"))
    return commit_with_slug(
        lambda slug: Product(**fields, slug=slug, categories=categories),
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
    _commit_write(if_match)
    return product


def delete(*, ref: str, if_match: str | None) -> None:
    """Soft delete: the product disappears for everyone; its SKU and slug become free."""
    product = _for_write(ref, if_match)
    product.deleted_at = product.updated_at = utcnow()
    product.image_upload_id = None  # only live products hold their image (and keep it from deletion)
    _commit_write(if_match)


# --- helpers (they flush at most; the use cases above commit) -------------------------


def _live() -> sa.ColumnElement[bool]:
    return Product.deleted_at.is_(None)


def _visible(viewer: Principal | None) -> sa.Select[tuple[Product]]:
    stmt = sa.select(Product).where(_live())
    if not sees_inactive(viewer):
        stmt = stmt.where(Product.is_active == sa.true())
    return stmt


def _as_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def _for_write(ref: str, if_match: str | None) -> Product:
    """A live product by id or slug (writers see inactive ones), checked against ``If-Match``."""
    product_id = _as_uuid(ref)
    stmt = sa.select(Product).options(selectinload(Product.categories)).where(_live())
    stmt = stmt.where(Product.id == product_id) if product_id else stmt.where(Product.slug == ref)
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
        message = "Must be a ready upload of purpose product_image."
        raise ValidationFailed(details=[{"field": "image_upload_id", "message": message}])


def _commit_write(if_match: str | None) -> None:
    """Commit an update; a concurrent change (version moved) or a duplicate is refused."""
    try:
        db.session.commit()
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
