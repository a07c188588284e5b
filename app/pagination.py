"""Lists: page and cursor pagination, sorting and sparse fields, shared by every domain.

A domain's query-args schema subclasses ``ListArgsSchema`` (adding its filters and a
``SortField`` naming its sortable fields); its service builds a filtered ``select`` and
hands it to ``paginate``, which picks the style the client asked for.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlencode

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app, request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from app.db import db
from app.errors import ValidationFailed
from app.urls import public_url

M = TypeVar("M")
# A sortable column: a mapped attribute (Product.price) or any column expression.
Sortable = ColumnElement[Any] | QueryableAttribute[Any]

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# Deep offsets are what cursors are for; the cap keeps OFFSET inside every backend's range.
MAX_PAGE = 100_000


@dataclass(frozen=True)
class SortKey:
    name: str
    descending: bool = False

    def __str__(self) -> str:
        return f"-{self.name}" if self.descending else self.name


@dataclass
class Page(Generic[M]):
    """One page of a list: the items, the ``meta`` of API.md and the links to walk it."""

    items: list[M]
    meta: dict[str, Any]
    links: dict[str, dict[str, str]] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        """RFC 8288 ``Link`` header: the current path on ``PUBLIC_BASE_URL`` (never the
        request's Host or X-Forwarded-Host)."""
        if not self.links:
            return {}
        base = public_url(request.path)
        parts = []
        for rel, overrides in self.links.items():
            params = [(k, v) for k, v in request.args.items(multi=True) if k not in overrides]
            params.extend(overrides.items())
            parts.append(f'<{base}?{urlencode(params)}>; rel="{rel}"')
        return {"Link": ", ".join(parts)}


class SortField(ma.fields.Field[list[SortKey]]):
    """``?sort=-created_at,name``: only the listed fields, ``-`` for descending."""

    def __init__(self, allowed: Sequence[str], *, note: str = "", **kwargs: Any) -> None:
        self.allowed = tuple(allowed)
        description = (
            "Comma-separated fields, each at most once; prefix one with - for descending. "
            f"Of: {', '.join(self.allowed)}{note}"
        )
        kwargs.setdefault("metadata", {"description": description, "pattern": f"^({_sequences(self.allowed)})$"})
        super().__init__(**kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[SortKey]:
        if not isinstance(value, str) or not value.strip():
            raise ma.ValidationError("Must be a comma-separated list of fields.")
        keys: list[SortKey] = []
        for token in value.split(","):
            descending = token.startswith("-")
            name = token.removeprefix("-")
            if name not in self.allowed:
                raise ma.ValidationError(f"Cannot sort by '{name}'. Allowed: {', '.join(self.allowed)}.")
            if any(k.name == name for k in keys):
                raise ma.ValidationError(f"'{name}' appears more than once.")
            keys.append(SortKey(name, descending))
        return keys


def _sequences(fields: Sequence[str]) -> str:
    """A regular expression for every sequence of ``fields`` (each optionally prefixed
    with ``-``) that names no field twice: the grammar of ``?sort=``, exactly."""
    alternatives = []
    for name in fields:
        rest = _sequences([f for f in fields if f != name])
        alternatives.append(f"-?{name}" + (f"(,({rest}))?" if rest else ""))
    return "|".join(alternatives)


class FieldsField(ma.fields.Field[list[str]]):
    """``?fields=id,name,price``: a subset of a resource's output fields."""

    def __init__(self, allowed: Sequence[str], **kwargs: Any) -> None:
        self.allowed = tuple(allowed)
        one = f"({'|'.join(self.allowed)})"
        kwargs.setdefault(
            "metadata",
            {"description": f"Comma-separated subset of: {', '.join(self.allowed)}", "pattern": f"^{one}(,{one})*$"},
        )
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> list[str]:
        if not isinstance(value, str) or not value:
            raise ma.ValidationError("Must be a comma-separated list of fields.")
        names = value.split(",")
        unknown = [n for n in names if n not in self.allowed]
        if unknown:
            raise ma.ValidationError(f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(self.allowed)}.")
        return list(dict.fromkeys(names))


_NOT_BOTH = ". A request uses one style: page/per_page together with cursor/limit is a 422."


class ListArgsSchema(ma.Schema):
    """Both pagination styles; a request uses one: ``cursor``/``limit`` or ``page``/``per_page``."""

    class Meta:
        unknown = ma.RAISE

    page = ma.fields.Integer(
        validate=ma.validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"Page number, default 1 (page style){_NOT_BOTH}"},
    )
    per_page = ma.fields.Integer(
        validate=ma.validate.Range(min=1, max=MAX_PER_PAGE),
        metadata={"description": f"Page size, default {DEFAULT_PER_PAGE} (page style){_NOT_BOTH}"},
    )

    @ma.validates_schema
    def _one_style(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if ("cursor" in data or "limit" in data) and ("page" in data or "per_page" in data):
            raise ma.ValidationError("Use either page/per_page or cursor/limit, not both.", "cursor")


class CursorListArgsSchema(ListArgsSchema):
    cursor = ma.fields.String(
        metadata={
            "description": "Opaque cursor from meta.next_cursor (cursor style); one the server did not make, "
            f"or made for another sort, is a 422{_NOT_BOTH}"
        }
    )
    limit = ma.fields.Integer(
        validate=ma.validate.Range(min=1, max=MAX_PER_PAGE),
        metadata={"description": f"Page size, default {DEFAULT_PER_PAGE} (cursor style){_NOT_BOTH}"},
    )


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="storefront.list-cursor")


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def _decode_value(raw: Any, column: ColumnElement[Any]) -> Any:
    column_type = column.type
    # A TypeDecorator (app.db.UTCDateTime) has no python_type of its own; its impl has.
    if isinstance(column_type, sa.types.TypeDecorator):
        column_type = column_type.impl_instance
    python_type = column_type.python_type
    if python_type is datetime:
        return datetime.fromisoformat(raw)
    if python_type is Decimal:
        return Decimal(raw)
    if python_type is uuid.UUID:
        return uuid.UUID(raw)
    if not isinstance(raw, python_type):
        raise ValueError("cursor value of the wrong type")
    return raw


def _invalid_cursor(message: str = "Invalid or expired cursor.") -> ValidationFailed:
    return ValidationFailed(details=[{"field": "cursor", "message": message}])


def _expression(column: Sortable) -> ColumnElement[Any]:
    return column.expression if isinstance(column, QueryableAttribute) else column


def _order_columns(
    sort: Sequence[SortKey], sortable: Mapping[str, Sortable], tiebreak: Sortable
) -> list[tuple[ColumnElement[Any], bool]]:
    columns = [(_expression(sortable[key.name]), key.descending) for key in sort]
    # The id breaks ties so that the order (and therefore every keyset) is total.
    columns.append((_expression(tiebreak), sort[0].descending if sort else False))
    return columns


class Totals(Protocol):
    """Where a page-style list's ``total`` may be known already (say, a cache): ``known``
    is asked before the page is read; ``counted`` is told the total when it had to be
    counted."""

    def known(self) -> int | None: ...

    def counted(self, total: int) -> None: ...


# The column a page of rows carries its filtered select's count in (see ``paginate_rows``).
TOTAL_COLUMN = "_total"


def _count_of(stmt: sa.Select[Any]) -> sa.Select[tuple[int]]:
    return sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())


def count_all(stmt: sa.Select[Any]) -> int:
    """The rows of a filtered select (no order): the ``total`` of a page-style list."""
    return db.session.scalar(_count_of(stmt)) or 0


def paginate(
    stmt: sa.Select[tuple[M]],
    args: Mapping[str, Any],
    *,
    sortable: Mapping[str, Sortable],
    default_sort: Sequence[SortKey],
    tiebreak: Sortable,
) -> Page[M]:
    """Run ``stmt`` (filters applied, no order) as one page in the style ``args`` asked for."""
    page: Page[M] = _paginate(
        stmt, args, sortable=sortable, default_sort=default_sort, tiebreak=tiebreak, rows=False, totals=None
    )
    return page


def paginate_rows(
    stmt: sa.Select[Any],
    args: Mapping[str, Any],
    *,
    sortable: Mapping[str, Sortable],
    default_sort: Sequence[SortKey],
    tiebreak: Sortable,
    totals: Totals | None = None,
) -> Page[sa.Row[Any]]:
    """``paginate`` for a select of columns (no ORM objects built): the items are its rows.

    A page-style ``total`` that ``totals`` does not know is counted by the page's own
    statement (a scalar subquery PostgreSQL runs once: one round trip, and the count
    and the page read one snapshot); each row then also carries it (``TOTAL_COLUMN``).
    A page past the end has no rows to carry it: then a ``COUNT(*)`` of its own runs.
    """
    page: Page[sa.Row[Any]] = _paginate(
        stmt, args, sortable=sortable, default_sort=default_sort, tiebreak=tiebreak, rows=True, totals=totals
    )
    return page


def _paginate(
    stmt: sa.Select[Any],
    args: Mapping[str, Any],
    *,
    sortable: Mapping[str, Sortable],
    default_sort: Sequence[SortKey],
    tiebreak: Sortable,
    rows: bool,
    totals: Totals | None,
) -> Page[Any]:
    sort: Sequence[SortKey] = args.get("sort") or default_sort
    columns = _order_columns(sort, sortable, tiebreak)
    order_by = [col.desc() if desc else col.asc() for col, desc in columns]

    if "cursor" in args or "limit" in args:
        return _cursor_page(stmt, args, sort=sort, columns=columns, order_by=order_by, rows=rows)

    page = int(args.get("page") or 1)
    per_page = int(args.get("per_page") or DEFAULT_PER_PAGE)
    page_stmt = stmt.order_by(*order_by).limit(per_page).offset((page - 1) * per_page)
    if not rows:
        total = count_all(stmt)
        items: list[Any] = list(db.session.scalars(page_stmt))
    else:
        known = totals.known() if totals is not None else None
        if known is None:
            page_stmt = page_stmt.add_columns(_count_of(stmt).scalar_subquery().label(TOTAL_COLUMN))
        items = list(db.session.execute(page_stmt))
        if known is not None:
            total = known
        else:
            total = getattr(items[0], TOTAL_COLUMN) if items else count_all(stmt)
            if totals is not None:
                totals.counted(total)
    total_pages = max(1, math.ceil(total / per_page))
    links = {"first": {"page": "1", "per_page": str(per_page)}}
    if page > 1:
        links["prev"] = {"page": str(min(page - 1, total_pages)), "per_page": str(per_page)}
    if page < total_pages:
        links["next"] = {"page": str(page + 1), "per_page": str(per_page)}
    links["last"] = {"page": str(total_pages), "per_page": str(per_page)}
    meta = {"page": page, "per_page": per_page, "total": total, "total_pages": total_pages}
    return Page(items=items, meta=meta, links=links)


# Query arguments that page through a list, or shape its items, without choosing its rows.
_NOT_FILTERS = frozenset({"page", "per_page", "cursor", "limit", "sort", "sparse_fields", "fields"})


def _list_signature(sort: Sequence[SortKey], args: Mapping[str, Any]) -> str:
    """What a cursor is valid for: its list's sort order and filters. A cursor carried over
    to other filters would go on from a position in another list; it is refused instead."""
    filters = sorted((name, repr(value)) for name, value in args.items() if name not in _NOT_FILTERS)
    digest = hashlib.sha256(repr(filters).encode()).hexdigest()[:16]
    return ",".join(str(k) for k in sort) + "|" + digest


def _legacy_signature(sort: Sequence[SortKey], args: Mapping[str, Any]) -> str | None:
    """A cursor issued before cursors named their filters (they named their sort only):
    still good for a list with no filters, so a walk in progress across a deploy goes on."""
    if any(name not in _NOT_FILTERS for name in args):
        return None
    return ",".join(str(k) for k in sort)


def _cursor_page(
    stmt: sa.Select[Any],
    args: Mapping[str, Any],
    *,
    sort: Sequence[SortKey],
    columns: list[tuple[ColumnElement[Any], bool]],
    order_by: list[Any],
    rows: bool,
) -> Page[Any]:
    limit = int(args.get("limit") or DEFAULT_PER_PAGE)
    signature = _list_signature(sort, args)
    token = args.get("cursor")
    if token:
        try:
            payload = _serializer().loads(token)
        except BadSignature as exc:
            raise _invalid_cursor() from exc
        if not isinstance(payload, dict) or payload.get("s") not in (signature, _legacy_signature(sort, args)):
            raise _invalid_cursor("This cursor belongs to another list: its sort order or filters differ.")
        raw_values = payload.get("v")
        if not isinstance(raw_values, list) or len(raw_values) != len(columns):
            raise _invalid_cursor()
        try:
            values = [_decode_value(raw, col) for raw, (col, _) in zip(raw_values, columns, strict=True)]
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise _invalid_cursor() from exc
        stmt = stmt.where(_after(columns, values))

    width = len(stmt.column_descriptions)  # an entity is one item of a row, however many columns it has
    # Labelled, so that a sort key the select already holds comes back as a column of its own.
    keys = (col.label(f"_cursor_key_{i}") for i, (col, _) in enumerate(columns))
    found = list(db.session.execute(stmt.add_columns(*keys).order_by(*order_by).limit(limit + 1)))
    has_more = len(found) > limit
    found = found[:limit]
    next_cursor = None
    if has_more and found:
        last_keys = list(found[-1])[width:]
        next_cursor = _serializer().dumps({"s": signature, "v": [_encode_value(v) for v in last_keys]})
    items = list(found) if rows else [row[0] for row in found]
    links = {"next": {"cursor": next_cursor, "limit": str(limit)}} if next_cursor else {}
    meta = {"limit": limit, "next_cursor": next_cursor, "has_more": has_more}
    return Page(items=items, meta=meta, links=links)


def _after(columns: list[tuple[ColumnElement[Any], bool]], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order of ``columns`` (mixed directions allowed).

    Written so that an index on the sort columns can seek to the cursor rather than
    filter every earlier row: a row-value comparison when all directions agree, else
    the expanded form plus a bound on the leading column.
    """
    bound = [sa.literal(v, type_=col.type) for (col, _), v in zip(columns, values, strict=True)]
    directions = {desc for _, desc in columns}
    if len(directions) == 1:
        left, right = sa.tuple_(*(col for col, _ in columns)), sa.tuple_(*bound)
        return left < right if directions.pop() else left > right
    alternatives = []
    for i, (col, desc) in enumerate(columns):
        equal_prefix = [c == v for (c, _), v in zip(columns[:i], bound[:i], strict=True)]
        beyond = col < bound[i] if desc else col > bound[i]
        alternatives.append(sa.and_(*equal_prefix, beyond))
    leading, leading_desc = columns[0]
    return sa.and_(leading <= bound[0] if leading_desc else leading >= bound[0], sa.or_(*alternatives))
