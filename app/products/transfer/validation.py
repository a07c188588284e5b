"""Validating import rows by the rules of ``POST /products``, and resolving what they name.

``validate`` loads each row with ``ProductCreateSchema`` itself (never a copy of its
fields): ``sku`` is required, every other field is ``partial``, so that a column the
file does not have stays absent (marshmallow skips a partial field that is missing,
load_default included) and an update leaves it alone. ``name`` and ``price``, which a new
product needs, are checked once the row is known to create one (``writing``).

A CSV cell is text; before loading it becomes what the API's JSON body would hold:

- surrounding whitespace is dropped (a cell's padding is layout), except in
  ``description``, which is kept exactly as written;
- an empty cell is an absent value, like a column the file does not have: an update
  leaves that field as it is, a new product takes the default (name or price: the
  schema's "Missing data for required field."). A file never clears or deletes by
  leaving something out; to clear ``compare_at_price``, ``image_upload_id`` or the
  categories, a JSON file sends ``null`` or ``[]``;
- ``stock``, ``low_stock_threshold``: a whole number (``12``, ``-3``, ``12.0``) → ``int``,
  anything else as it is, for the schema to refuse;
- ``is_active``: ``true``/``false``/``1``/``0`` in any case (the words a query string
  takes, ``QueryBoolean``) → ``bool``, anything else as it is, for the schema to refuse;
- amounts stay text: ``Money`` reads decimal strings (and refuses anything else).

A JSON value is typed already and goes to the schema as it is, exactly as in a request
body; the one difference of the parser is mended: ``ijson`` gives ``Decimal`` where
``json`` gives ``float``, so a whole ``Decimal`` (``5.0``) becomes the ``int`` the schema
takes from a JSON body.

``categories`` (not a schema field: the API takes ids, a file takes slugs): a CSV cell
of slugs separated by ``|`` (empty: absent, as above), or a JSON array of strings; each must be a
valid ``Slug``, repeats count once, at most ``MAX_CATEGORIES``. ``resolve_references``
then looks the slugs of a whole batch up in one query, and its image uploads in another.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import marshmallow as ma
import sqlalchemy as sa

from app.db import db
from app.products.models import Category
from app.products.schemas import MAX_CATEGORIES, SKU_INPUT_PATTERN, ProductCreateSchema, Slug
from app.products.service import IMAGE_NOT_READY
from app.products.transfer.rows import (
    CATEGORY_SEPARATOR,
    COLUMNS,
    REQUIRED_COLUMNS,
    ROW_FIELD,
    RawRow,
    RowError,
    RowSource,
    ValidRow,
)
from app.schema import QueryBoolean, text_problem
from app.uploads.service import ready_product_images

CATEGORIES = "categories"
_SCHEMA = ProductCreateSchema()
# Every field but the required ones: absent stays absent (no load_default).
_PARTIAL = tuple(name for name in _SCHEMA.fields if name not in REQUIRED_COLUMNS)
_SCHEMA_COLUMNS = tuple(column for column in COLUMNS if column != CATEGORIES)
_INTEGERS = frozenset({"stock", "low_stock_threshold"})
_KEPT_AS_WRITTEN = frozenset({"description"})
# A whole number as text; longer ones stay text (and are refused) rather than tax int().
_WHOLE_DIGITS_MAX = 30
_WHOLE_NUMBER = re.compile(rf"[+-]?[0-9]{{1,{_WHOLE_DIGITS_MAX}}}(?:\.0*)?")
_SLUG = Slug()
_SHOWN_MAX = 60
# Errors come out in the file's column order, a row-level one first.
_FIELD_ORDER = {name: i for i, name in enumerate((ROW_FIELD, *COLUMNS))}


def validate(raw: RawRow) -> ValidRow | list[RowError]:
    """The row as a ``ValidRow``, or every error found in it (each naming its column)."""
    sku = error_sku(raw.values.get("sku"))
    if raw.problem is not None:
        return [RowError(row=raw.number, sku=sku, field=ROW_FIELD, message=raw.problem)]

    def error(field: str, message: str) -> RowError:
        return RowError(row=raw.number, sku=sku, field=field, message=message)

    unfit = [error(column, problem) for column, problem in _unfit_texts(raw.values)]
    if unfit:  # refused as the API refuses them, before any rule (PostgreSQL cannot store them)
        return sorted(unfit, key=lambda e: _FIELD_ORDER.get(e.field, len(_FIELD_ORDER)))

    convert = _from_cell if raw.source is RowSource.CSV else _from_json
    data: dict[str, Any] = {}
    for column in _SCHEMA_COLUMNS:
        if column in raw.values:
            value = convert(column, raw.values[column])
            if value is not _ABSENT:
                data[column] = value
    errors: list[RowError] = []
    loaded: dict[str, Any] = {}
    try:
        loaded = _SCHEMA.load(data, partial=_PARTIAL)
    except ma.ValidationError as exc:
        errors.extend(error(field, message) for field, message in _messages(exc.messages))

    slugs: list[str] | None = None
    if CATEGORIES in raw.values and not (raw.source is RowSource.CSV and not str(raw.values[CATEGORIES]).strip()):
        slugs, problems = _category_slugs(raw.values[CATEGORIES], raw.source)
        errors.extend(error(CATEGORIES, message) for message in problems)

    if errors:
        return sorted(errors, key=lambda e: _FIELD_ORDER.get(e.field, len(_FIELD_ORDER)))
    return ValidRow(number=raw.number, sku=loaded.pop("sku"), fields=loaded, category_slugs=slugs)


def _unfit_texts(values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Each column holding text no one can store (a NUL, an unpaired surrogate: a JSON file
    can escape them), with the problem."""
    for column, value in values.items():
        texts = value if isinstance(value, list) else [value]
        problem = next((p for t in texts if isinstance(t, str) and (p := text_problem(t)) is not None), None)
        if problem is not None:
            yield column, problem


def resolve_references(rows: Sequence[ValidRow]) -> tuple[list[ValidRow], list[RowError]]:
    """Category slugs → ids and image uploads checked, for a batch: one query each.

    Returns the rows whose references all hold (``category_ids`` filled where the row has
    ``categories``), and an error for each unknown slug set or unusable image.
    """
    wanted_slugs = {slug for row in rows for slug in row.category_slugs or ()}
    category_ids: dict[str, uuid.UUID] = {}
    if wanted_slugs:
        found = db.session.execute(sa.select(Category.slug, Category.id).where(Category.slug.in_(wanted_slugs)))
        category_ids = {row.slug: row.id for row in found}
    images = {row.fields["image_upload_id"] for row in rows if row.fields.get("image_upload_id") is not None}
    ready_images = ready_product_images(images)

    passed: list[ValidRow] = []
    errors: list[RowError] = []
    for row in rows:
        row_errors = []
        unknown = [slug for slug in row.category_slugs or () if slug not in category_ids]
        if unknown:
            message = f"Unknown category slug(s): {', '.join(unknown)}."
            row_errors.append(RowError(row=row.number, sku=row.sku, field=CATEGORIES, message=message))
        image = row.fields.get("image_upload_id")
        if image is not None and image not in ready_images:
            row_errors.append(RowError(row=row.number, sku=row.sku, field="image_upload_id", message=IMAGE_NOT_READY))
        if row_errors:
            errors.extend(row_errors)
            continue
        if row.category_slugs is not None:
            row.category_ids = [category_ids[slug] for slug in row.category_slugs]
        passed.append(row)
    return passed, errors


# --- from the file to what the schema takes ---------------------------------------------


class _Absent:
    """A value to leave out of what the schema loads."""


_ABSENT: Any = _Absent()


def _from_cell(column: str, cell: str) -> Any:
    if not cell.strip():
        return _ABSENT
    text = cell if column in _KEPT_AS_WRITTEN else cell.strip()
    if column in _INTEGERS and _WHOLE_NUMBER.fullmatch(text):
        return int(Decimal(text))
    if column == "is_active":
        word = text.lower()
        if word in QueryBoolean.truthy or word in QueryBoolean.falsy:
            return word in QueryBoolean.truthy
    return text


def _from_json(column: str, value: Any) -> Any:
    if column in _INTEGERS and isinstance(value, Decimal) and _is_whole(value):
        return int(value)
    return value


def _is_whole(value: Decimal) -> bool:
    # (Bounded: ``int()`` of 1E+999999999 would take the worker's memory.)
    return value.is_finite() and value.adjusted() < _WHOLE_DIGITS_MAX and value == value.to_integral_value()


def error_sku(value: Any) -> str | None:
    """The SKU to name in an error: as stored (upper case) when it is a valid SKU, as every
    error of a later stage names it; else as given, stripped; None when there is none (or
    not text)."""
    if isinstance(value, str) and value.strip():
        given = value.strip()
        return given.upper() if SKU_INPUT_PATTERN.fullmatch(given) else given
    return None


def _messages(messages: Any, field: str = ROW_FIELD) -> list[tuple[str, str]]:
    """marshmallow's error messages as (column, message) pairs; ``_schema`` → ``ROW_FIELD``."""
    if isinstance(messages, str):
        return [(field, messages)]
    if isinstance(messages, Mapping):
        pairs = []
        for key, nested in messages.items():
            column = key if isinstance(key, str) and key in COLUMNS else field
            pairs.extend(_messages(nested, column))
        return pairs
    return [pair for message in messages for pair in _messages(message, field)]


def _category_slugs(value: Any, source: RowSource) -> tuple[list[str], list[str]]:
    """The slugs of a ``categories`` value (repeats once, in order), and what is wrong with them."""
    if source is RowSource.CSV:
        items: list[Any] = [part.strip() for part in str(value).split(CATEGORY_SEPARATOR) if part.strip()]
    elif isinstance(value, list):
        items = value
    else:
        return [], ["Must be an array of category slugs."]
    problems = []
    slugs: list[str] = []
    for position, item in enumerate(items, start=1):
        try:
            slugs.append(_SLUG.deserialize(item))
        except ma.ValidationError as exc:
            reasons = " ".join(message for _field, message in _messages(exc.messages))
            problems.append(f"{_shown(item) if isinstance(item, str) else f'Item {position}'}: {reasons}")
    slugs = list(dict.fromkeys(slugs))
    if len(slugs) > MAX_CATEGORIES:
        problems.append(f"At most {MAX_CATEGORIES} categories (found {len(slugs)}).")
    return slugs, problems


def _shown(text: str) -> str:
    """A value from the file, quoted (and shortened) for a message."""
    return f"'{text}'" if len(text) <= _SHOWN_MAX else f"'{text[:_SHOWN_MAX]}…'"
