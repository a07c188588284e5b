"""Products as JSON bytes, fast: rows to dicts by hand, bodies as templates with slots.

``ProductSchema`` stays the definition (the OpenAPI document is generated from it, and
create/update answers are dumped by it); ``product_dict`` writes the same dict from a row
of ``app.products.queries.COLUMNS`` without building ORM objects or running marshmallow
(a test holds the two equal, field for field). A body is a *template*: the JSON the app
would send, compact as Flask writes it, with a NUL byte (which JSON text never holds) in
place of each value that stock moves; ``fill`` puts the current values in.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.products.cache import State
from app.schema import money_text, utc_text
from app.uploads.urls import content_url, thumbnail_urls

# The fields a stock change moves, in the order ``ProductSchema`` declares them.
VOLATILE = ("stock", "in_stock", "low_stock", "version", "updated_at")
SLOT = b"\x00"


@dataclass(frozen=True)
class CategoryRef:
    id: uuid.UUID
    slug: str
    name: str


def product_dict(row: sa.Row[Any], categories: Sequence[CategoryRef], *, currency: str) -> dict[str, Any]:
    """``ProductSchema().dump(product)``, from a row."""
    stock: int = row.stock
    compare_at = row.compare_at_price
    image: uuid.UUID | None = row.image_upload_id
    return {
        "id": str(row.id),
        "sku": row.sku,
        "slug": row.slug,
        "name": row.name,
        "description": row.description,
        "price": money_text(row.price),
        "compare_at_price": money_text(compare_at) if compare_at is not None else None,
        "currency": currency,
        "stock": stock,
        "in_stock": stock > 0,
        "low_stock": stock <= row.low_stock_threshold,
        "is_active": row.is_active,
        "categories": [{"id": str(c.id), "slug": c.slug, "name": c.name} for c in categories],
        "image_upload_id": str(image) if image else None,
        "image_url": content_url(image) if image else None,
        "thumbnails": thumbnail_urls(image) if image else None,
        "version": row.version,
        "created_at": utc_text(row.created_at),
        "updated_at": utc_text(row.updated_at),
    }


def only(item: Mapping[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    """``?fields=``: the item with only those fields, in the order asked (as the schema's
    ``only`` writes them)."""
    if not fields:
        return dict(item)
    return {name: item[name] for name in fields}


def _dumps(value: Any) -> bytes:
    # The app's JSON provider, compact as its responses are.
    text: str = current_app.json.dumps(value, separators=(",", ":"))
    return text.encode()


# While a body is dumped, each volatile value is this text; no text the app stores holds a
# NUL (the parser refuses one: PostgreSQL cannot store it), so its JSON, ``"\u0000"``, is a
# slot's place and nothing else.
_PLACEHOLDER = "\x00"
_DUMPED_PLACEHOLDER = b'"\\u0000"'


def _template(envelope: Mapping[str, Any], slots: int) -> bytes:
    """``envelope`` as JSON (one dump, as Flask writes it) with its placeholders as slots."""
    body = _dumps(envelope)
    if body.count(_DUMPED_PLACEHOLDER) != slots:
        raise ValueError("a stored text holds a NUL")
    return body.replace(_DUMPED_PLACEHOLDER, SLOT) + b"\n"


def _placeheld(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _PLACEHOLDER if name in VOLATILE else value for name, value in item.items()}


def _slots(items: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for item in items for name in item if name in VOLATILE)


def list_template(items: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> bytes:
    """The body of a list answer, ``{"data": [...], "meta": {...}}`` and a newline, with a
    slot for each volatile field of each item."""
    return _template({"data": [_placeheld(i) for i in items], "meta": meta}, _slots(items))


def one_template(item: Mapping[str, Any]) -> bytes:
    """The body of one product's answer, ``{"data": {...}}`` and a newline, with slots."""
    return _template({"data": _placeheld(item)}, _slots([item]))


def plain(value: Any) -> bytes:
    """A body without slots (categories): the envelope ``value`` as Flask would send it."""
    return _dumps(value) + b"\n"


def volatile_fields(fields: Sequence[str] | None) -> tuple[str, ...]:
    """The volatile fields of an item, in the order its template holds their slots."""
    return tuple(f for f in fields if f in VOLATILE) if fields else VOLATILE


def _value(name: str, state: State, threshold: int) -> bytes:
    if name == "stock":
        return str(state.stock).encode()
    if name == "in_stock":
        return b"true" if state.stock > 0 else b"false"
    if name == "low_stock":
        return b"true" if state.stock <= threshold else b"false"
    if name == "version":
        return str(state.version).encode()
    return b'"' + state.updated_at.encode() + b'"'


def fill(template: bytes, volatile: Sequence[str], states: Sequence[State], thresholds: Sequence[int]) -> bytes:
    """The template with each item's slots filled from its state, in order."""
    statics = template.split(SLOT)
    values = [
        _value(name, state, threshold) for state, threshold in zip(states, thresholds, strict=True) for name in volatile
    ]
    if len(values) != len(statics) - 1:
        raise ValueError("template and states disagree")
    out = [statics[0]]
    for value, static in zip(values, statics[1:], strict=True):
        out.append(value)
        out.append(static)
    return b"".join(out)
