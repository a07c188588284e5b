"""The catalog's read queries: visible products as rows, list filters, search, relations.

Reads select columns, not ORM objects (building objects cost more than the SQL), and
load the categories of a whole page in one statement.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.db import db, escape_like, on_postgresql, table_of
from app.errors import ErrorDetail, ValidationFailed
from app.pagination import Sortable, SortKey
from app.permissions import Principal
from app.products.models import SEARCH_VECTOR, Category, Product, product_categories
from app.products.permissions import sees_inactive
from app.products.rendering import CategoryRef

# Reads name the tables' columns, not the models' attributes (see ``app.db.table_of``):
# they return plain rows.
_categories = table_of(Category)
PRODUCT = table_of(Product).c
CATEGORY = _categories.c

COLUMNS = (
    PRODUCT.id,
    PRODUCT.sku,
    PRODUCT.slug,
    PRODUCT.name,
    PRODUCT.description,
    PRODUCT.price,
    PRODUCT.compare_at_price,
    PRODUCT.stock,
    PRODUCT.low_stock_threshold,
    PRODUCT.is_active,
    PRODUCT.image_upload_id,
    PRODUCT.version,
    PRODUCT.created_at,
    PRODUCT.updated_at,
)
SORTABLE: dict[str, Sortable] = {
    "name": PRODUCT.name,
    "price": PRODUCT.price,
    "created_at": PRODUCT.created_at,
    "updated_at": PRODUCT.updated_at,
}
# Staff only (their sync jobs): ``updated_at`` has no index, on purpose. Every sale moves a
# product's stock and ``updated_at``; with neither indexed, PostgreSQL writes those rows as
# HOT updates (no index touched; see the stock-updates migration). A staff sync's scan
# costs less than an index every sale would maintain.
STAFF_FILTERS = ("is_active", "updated_after")
STAFF_SORTS = ("updated_at",)
DEFAULT_SORT = (SortKey("created_at", descending=True),)
RELEVANCE = (SortKey("relevance", descending=True),)
# ``?q=`` on PostgreSQL: the words in the weighted document (name A, SKU B, description
# D; see the migration), ranked by ts_rank, with a bonus for the query appearing in the
# name or the SKU as typed (which also finds a product by any part of its SKU or name): a
# match in the name ranks above one in the SKU, as API.md promises.
SEARCH_CONFIG = "english"
NAME_BONUS = 1.0
SKU_BONUS = 0.5
TIER = 100.0  # above any ts_rank and bonus: a tier's every match ranks above the next tier's
_WORD = re.compile(r"[^\W_]+")
MAX_SEARCH_WORDS = 16


def live() -> sa.ColumnElement[bool]:
    return PRODUCT.deleted_at.is_(None)


def visible(viewer: Principal | None) -> sa.Select[Any]:
    """Rows of the products ``viewer`` may see: live ones; only active ones unless staff."""
    stmt = sa.select(*COLUMNS).where(live())
    if not sees_inactive(viewer):
        stmt = stmt.where(PRODUCT.is_active.is_(True))
    return stmt


def by_ref(stmt: sa.Select[Any], ref: str) -> sa.Select[Any]:
    """``{id_or_slug}``: anything that parses as a UUID is an id."""
    try:
        return stmt.where(PRODUCT.id == uuid.UUID(ref))
    except ValueError:
        return stmt.where(PRODUCT.slug == ref)


def in_category(slug: str) -> sa.ColumnElement[bool]:
    """Products in the category ``slug``."""
    return sa.exists().where(
        product_categories.c.product_id == PRODUCT.id,
        product_categories.c.category_id == CATEGORY.id,
        CATEGORY.slug == slug,
    )


def check_filters(args: Mapping[str, Any], viewer: Principal | None) -> None:
    """Refuse the filters and sorts ``viewer`` may not use (before any cache is consulted)."""
    if sees_inactive(viewer):
        return
    details: list[ErrorDetail] = [
        {"field": name, "message": f"Only staff may filter by {name}."} for name in STAFF_FILTERS if name in args
    ]
    details += [
        {"field": "sort", "message": f"Only staff may sort by {key.name}."}
        for key in args.get("sort") or ()
        if key.name in STAFF_SORTS
    ]
    if details:
        raise ValidationFailed(details=details)


def filtered(stmt: sa.Select[Any], args: Mapping[str, Any], viewer: Principal | None) -> sa.Select[Any]:
    """``stmt`` with the list filters of ``args`` (the documented query parameters)."""
    check_filters(args, viewer)
    return apply_filters(stmt, args)


def apply_filters(stmt: sa.Select[Any], args: Mapping[str, Any]) -> sa.Select[Any]:
    """``stmt`` with the filters of ``args``, whoever asks (``filtered`` checks who may)."""
    if "is_active" in args:
        stmt = stmt.where(PRODUCT.is_active.is_(bool(args["is_active"])))
    if "sku" in args:
        stmt = stmt.where(PRODUCT.sku == args["sku"])
    if args.get("updated_after") is not None:
        stmt = stmt.where(PRODUCT.updated_at >= args["updated_after"])
    if args.get("q"):
        stmt = stmt.where(search_condition(args["q"]))
    if "category" in args:
        stmt = stmt.where(in_category(args["category"]))
    if args.get("min_price") is not None:
        stmt = stmt.where(PRODUCT.price >= args["min_price"])
    if args.get("max_price") is not None:
        stmt = stmt.where(PRODUCT.price <= args["max_price"])
    if "in_stock" in args:
        stmt = stmt.where(PRODUCT.stock > 0 if args["in_stock"] else PRODUCT.stock == 0)
    return stmt


def sorting(args: Mapping[str, Any]) -> tuple[dict[str, Sortable], Sequence[SortKey]]:
    """The sortable keys and the default order: by relevance when searching."""
    if not args.get("q"):
        return SORTABLE, DEFAULT_SORT
    return {**SORTABLE, "relevance": relevance(args["q"])}, RELEVANCE


# --- search ---------------------------------------------------------------------------------


def _pattern(q: str) -> str:
    return f"%{escape_like(q)}%"


def _words_query(q: str) -> str | None:
    """``to_tsquery`` text for ``q``: all of its words, the last one (still being typed) as
    a prefix unless it is a number (``100`` should not find ``1000``). Words are letters
    and digits only, so nothing of the tsquery syntax reaches the query."""
    words = _WORD.findall(q.lower())[:MAX_SEARCH_WORDS]
    if not words:
        return None
    last = words[-1] if words[-1].isdigit() else f"{words[-1]}:*"
    return " & ".join([*words[:-1], last])


def _document() -> sa.ColumnElement[Any]:
    return sa.literal_column(f"products.{SEARCH_VECTOR}", type_=postgresql.TSVECTOR())


def _tsquery(text: str) -> sa.ColumnElement[Any]:
    return sa.func.to_tsquery(sa.literal_column(f"'{SEARCH_CONFIG}'::regconfig"), text)


def search_condition(q: str) -> sa.ColumnElement[bool]:
    pattern = _pattern(q)
    substring = sa.or_(PRODUCT.sku.ilike(pattern, escape="\\"), PRODUCT.name.ilike(pattern, escape="\\"))
    if not on_postgresql():
        return sa.or_(substring, PRODUCT.description.ilike(pattern, escape="\\"))
    words = _words_query(q)
    if words is None:
        return substring
    return sa.or_(_document().bool_op("@@")(_tsquery(words)), substring)


def relevance(q: str) -> sa.ColumnElement[float]:
    """Higher is better: a match in the name above one in the SKU above one in the
    description alone (PostgreSQL: in tiers, a name matching by its words or by the query
    as typed; within a tier by ts_rank, the query as typed adding a bonus). SQLite: the
    same order from the substring matches alone."""
    pattern = _pattern(q)
    name_typed = PRODUCT.name.ilike(pattern, escape="\\")
    sku_typed = PRODUCT.sku.ilike(pattern, escape="\\")
    in_sku = sa.case((sku_typed, SKU_BONUS), else_=0.0)
    in_name = sa.case((name_typed, NAME_BONUS), else_=0.0)
    if not on_postgresql():
        in_description = sa.case((PRODUCT.description.ilike(pattern, escape="\\"), 0.1), else_=0.0)
        return sa.type_coerce(in_sku + in_name + in_description, sa.Float())
    words = _words_query(q)
    rank: sa.ColumnElement[Any] = sa.literal(0.0, type_=postgresql.DOUBLE_PRECISION())
    name_hit: sa.ColumnElement[bool] = name_typed
    sku_hit: sa.ColumnElement[bool] = sku_typed
    if words:
        query = _tsquery(words)
        rank = sa.cast(sa.func.ts_rank(_document(), query), postgresql.DOUBLE_PRECISION())
        name_hit = sa.or_(_words_weighted("a").bool_op("@@")(query), name_typed)
        sku_hit = sa.or_(_words_weighted("b").bool_op("@@")(query), sku_typed)
    tier = sa.case((name_hit, 2 * TIER), (sku_hit, TIER), else_=0.0)
    return sa.type_coerce(tier + rank + in_sku + in_name, sa.Float())


def _words_weighted(weight: str) -> sa.ColumnElement[Any]:
    """The words of the document with ``weight`` only (``a``: the name, ``b``: the SKU)."""
    return sa.func.ts_filter(_document(), sa.literal_column(f"'{{{weight}}}'::\"char\"[]"), type_=postgresql.TSVECTOR())


# --- related rows ------------------------------------------------------------------------------


# Built once, run with the ids bound (``expanding``: one parameter per id at execution):
# building a statement costs more than running this one (about 0.2 ms of 0.55 ms).
_CATEGORIES_OF = (
    sa.select(product_categories.c.product_id, CATEGORY.id, CATEGORY.slug, CATEGORY.name)
    .join(_categories, CATEGORY.id == product_categories.c.category_id)
    .where(product_categories.c.product_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(CATEGORY.name, CATEGORY.id)
)


def categories_of(product_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[CategoryRef]]:
    """Each product's categories, by name (one statement for the whole page)."""
    found: dict[uuid.UUID, list[CategoryRef]] = {}
    if not product_ids:
        return found
    for product_id, category_id, slug, name in db.session.execute(_CATEGORIES_OF, {"ids": list(product_ids)}):
        found.setdefault(product_id, []).append(CategoryRef(category_id, slug, name))
    return found
