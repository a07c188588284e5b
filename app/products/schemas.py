"""Schemas of the catalog: products and categories, in and out, and the list arguments."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask import current_app

from app.pagination import CursorListArgsSchema, FieldsField, ListArgsSchema, SortField
from app.products.models import DEFAULT_LOW_STOCK_THRESHOLD, INT_MAX, NAME_MAX, SKU_MAX, SLUG_MAX
from app.products.slugs import RESERVED_SLUGS
from app.schema import Boolean, FullMatch, Integer, Money, QueryBoolean, Schema, TrimmedString, UTCDateTime
from app.uploads.schemas import ThumbnailsSchema

# Either case on input; stored and shown upper case.
SKU_INPUT_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{1,{SKU_MAX - 1}}}$")
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DESCRIPTION_MAX = 20_000
# Integer columns are 32-bit on PostgreSQL; larger values are a 422, not a database error.
MAX_CATEGORIES = 50


class Sku(ma.fields.String):
    """A SKU, normalised to upper case: letters, digits, ``.``, ``_``, ``-``; 2 to 64 long."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": SKU_INPUT_PATTERN.pattern, "example": "TSHIRT-RED-M", **kwargs.pop("metadata", {})}
        super().__init__(
            metadata=metadata,
            validate=FullMatch(
                SKU_INPUT_PATTERN,
                error=(
                    f"Must be 2 to {SKU_MAX} characters: letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit."
                ),
            ),
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).upper()


def _not_uuid_shaped(value: str) -> None:
    # ``/products/{id_or_slug}`` reads anything that parses as a UUID as an id.
    try:
        uuid.UUID(value)
    except ValueError:
        return
    raise ma.ValidationError("Must not look like a UUID.")


def _not_reserved(value: str) -> None:
    if value in RESERVED_SLUGS:
        raise ma.ValidationError(f"'{value}' is reserved (/products/{value} is another resource).")


class Slug(ma.fields.String):
    """Lower-case words of letters and digits joined by single hyphens, at most 120 long."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "pattern": SLUG_PATTERN.pattern,
            "not": {"enum": sorted(RESERVED_SLUGS)},
            "example": "red-t-shirt",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(
            metadata=metadata,
            validate=[
                ma.validate.Length(min=1, max=SLUG_MAX),
                FullMatch(
                    SLUG_PATTERN, error="Must be lower-case letters and digits in words joined by single hyphens."
                ),
                _not_uuid_shaped,
                _not_reserved,
            ],
            **kwargs,
        )


def _non_negative_int(**kwargs: Any) -> Integer:
    return Integer(validate=ma.validate.Range(min=0, max=INT_MAX), **kwargs)


# --- out -------------------------------------------------------------------------------


class Currency(ma.fields.String):
    """The store's currency (ISO 4217, config ``CURRENCY``), written beside every amount."""

    def serialize(self, attr: str, obj: Any, accessor: Any = None, **kwargs: Any) -> str:
        currency: str = current_app.config["CURRENCY"]
        return currency


class CategoryRefSchema(Schema):
    id = ma.fields.UUID(dump_only=True)
    slug = ma.fields.String(dump_only=True)
    name = ma.fields.String(dump_only=True)


class CategorySchema(Schema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(dump_only=True)
    slug = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True, allow_none=True)
    created_at = UTCDateTime(dump_only=True)
    updated_at = UTCDateTime(dump_only=True)


class ProductSchema(Schema):
    SPARSE_FIELDSETS = True

    id = ma.fields.UUID(dump_only=True)
    sku = ma.fields.String(dump_only=True)
    slug = ma.fields.String(dump_only=True)
    name = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True)
    price = Money(dump_only=True)
    compare_at_price = Money(dump_only=True, allow_none=True)
    currency = Currency(dump_only=True, metadata={"description": "ISO 4217", "example": "USD", "pattern": "^[A-Z]{3}$"})
    stock = ma.fields.Integer(dump_only=True)
    in_stock = ma.fields.Boolean(dump_only=True)
    low_stock = ma.fields.Boolean(dump_only=True, metadata={"description": "stock <= low_stock_threshold"})
    is_active = ma.fields.Boolean(dump_only=True)
    categories = ma.fields.List(ma.fields.Nested(CategoryRefSchema), dump_only=True)
    image_upload_id = ma.fields.UUID(dump_only=True, allow_none=True)
    image_url = ma.fields.String(
        dump_only=True, allow_none=True, metadata={"format": "uri", "description": "The product image, if any"}
    )
    thumbnails = ma.fields.Nested(ThumbnailsSchema, dump_only=True, allow_none=True)
    version = ma.fields.Integer(dump_only=True, metadata={"description": "Bumped by every change; the ETag"})
    created_at = UTCDateTime(dump_only=True)
    updated_at = UTCDateTime(dump_only=True)


PRODUCT_FIELDS = tuple(ProductSchema().fields)


# --- in --------------------------------------------------------------------------------


def _name(**kwargs: Any) -> TrimmedString:
    return TrimmedString(validate=ma.validate.Length(min=1, max=NAME_MAX), **kwargs)


def _description(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(validate=ma.validate.Length(max=DESCRIPTION_MAX), **kwargs)


def _category_ids(**kwargs: Any) -> ma.fields.List[Any]:
    return ma.fields.List(ma.fields.UUID(), validate=ma.validate.Length(max=MAX_CATEGORIES), **kwargs)


_SLUG_DOC = {"description": "Generated from the name when omitted (create); kept when omitted (PUT)"}


class _ProductWriteSchema(Schema):
    @ma.validates_schema
    def _compare_at_not_below_price(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        # PATCH may send only one of the two; the service checks the merged result too.
        compare_at, price = data.get("compare_at_price"), data.get("price")
        if compare_at is not None and price is not None and compare_at < price:
            raise ma.ValidationError("Must be greater than or equal to price.", "compare_at_price")


class ProductCreateSchema(_ProductWriteSchema):
    """A new product; also the body of PUT, which replaces every writable field."""

    sku = Sku(required=True)
    name = _name(required=True)
    slug = Slug(metadata=_SLUG_DOC)
    description = _description(load_default="")
    price = Money(required=True)
    compare_at_price = Money(allow_none=True, load_default=None)
    stock = _non_negative_int(required=True)
    low_stock_threshold = _non_negative_int(load_default=DEFAULT_LOW_STOCK_THRESHOLD)
    is_active = Boolean(load_default=True)
    category_ids = _category_ids(load_default=list)
    image_upload_id = ma.fields.UUID(
        allow_none=True, load_default=None, metadata={"description": "A ready upload of purpose product_image"}
    )


class ProductUpdateSchema(_ProductWriteSchema):
    """A partial change (PATCH): only the fields sent change."""

    sku = Sku()
    name = _name()
    slug = Slug()
    description = _description()
    price = Money()
    compare_at_price = Money(allow_none=True)
    stock = _non_negative_int()
    low_stock_threshold = _non_negative_int()
    is_active = Boolean()
    category_ids = _category_ids()
    image_upload_id = ma.fields.UUID(
        allow_none=True, metadata={"description": "A ready upload of purpose product_image"}
    )


class CategoryCreateSchema(Schema):
    name = _name(required=True)
    slug = Slug(metadata={"description": "Generated from the name when omitted"})
    description = _description(allow_none=True, load_default=None)


# --- list arguments --------------------------------------------------------------------


class ProductQueryArgsSchema(CursorListArgsSchema):
    q = TrimmedString(validate=ma.validate.Length(min=1, max=100), metadata={"description": "Search name, SKU, text"})
    category = ma.fields.String(validate=ma.validate.Length(min=1, max=SLUG_MAX), metadata={"description": "A slug"})
    min_price = Money()
    max_price = Money(metadata={"description": "Not below min_price (a 422 otherwise)"})
    in_stock = QueryBoolean()
    is_active = QueryBoolean(metadata={"description": "Staff only (products:write); a 422 for others"})
    sku = Sku(metadata={"description": "Exactly this SKU (in any case): the one product that has it, or none"})
    updated_after = UTCDateTime(
        metadata={
            "description": "Staff only (products:write); a 422 for others. Products changed at or after this "
            "time, a sale's stock change included: with sort=updated_at, an incremental sync"
        }
    )
    sort = SortField(allowed=("name", "price", "created_at", "updated_at"), note=" (updated_at: staff only)")
    # Not named ``fields``: that is the attribute where a marshmallow schema keeps its fields.
    sparse_fields = FieldsField(allowed=PRODUCT_FIELDS, data_key="fields")

    @ma.validates_schema
    def _price_range(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        check_price_range(data)


def check_price_range(filters: Mapping[str, Any]) -> None:
    """``max_price`` not below ``min_price`` (the list filters, wherever they are taken)."""
    low, high = filters.get("min_price"), filters.get("max_price")
    if low is not None and high is not None and low > high:
        raise ma.ValidationError("Must be greater than or equal to min_price.", "max_price")


class ProductItemArgsSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    sparse_fields = FieldsField(allowed=PRODUCT_FIELDS, data_key="fields")


class CategoryQueryArgsSchema(ListArgsSchema):
    sort = SortField(allowed=("name", "created_at"))
