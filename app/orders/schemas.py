"""Schemas of the orders domain."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
import pycountry

from app.orders.models import STATUSES
from app.pagination import CursorListArgsSchema, SortField
from app.schema import Integer, Money, Schema, TrimmedString, UTCDateTime

MAX_LINES = 50
MAX_QUANTITY = 100


COUNTRY_CODES = sorted(country.alpha_2 for country in pycountry.countries)


def country_code(**kwargs: Any) -> ma.fields.String:
    """An assigned ISO 3166-1 alpha-2 code, upper case (``US``, ``DE``)."""
    return ma.fields.String(
        validate=ma.validate.OneOf(COUNTRY_CODES, error="Must be an ISO 3166-1 alpha-2 country code, e.g. US or DE."),
        metadata={"example": "US"},
        **kwargs,
    )


def _line(size: int, **kwargs: Any) -> TrimmedString:
    return TrimmedString(validate=ma.validate.Length(min=1, max=size), **kwargs)


class ShippingAddressInSchema(Schema):
    name = _line(120, required=True)
    line1 = _line(200, required=True)
    line2 = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(max=200))
    city = _line(100, required=True)
    postal_code = _line(20, required=True)
    country = country_code(required=True)


class ShippingAddressSchema(Schema):
    name = ma.fields.String()
    line1 = ma.fields.String()
    line2 = ma.fields.String(allow_none=True)
    city = ma.fields.String()
    postal_code = ma.fields.String()
    # A pattern, not the input's list: an order keeps the code it was placed with, even one
    # a later pycountry no longer lists.
    country = ma.fields.String(metadata={"example": "US", "description": "ISO 3166-1 alpha-2", "pattern": "^[A-Z]{2}$"})


class OrderLineInSchema(Schema):
    product_id = ma.fields.UUID(required=True)
    quantity = Integer(required=True, validate=ma.validate.Range(min=1, max=MAX_QUANTITY))


class OrderCreateSchema(Schema):
    items = ma.fields.List(
        ma.fields.Nested(OrderLineInSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_LINES),
        metadata={"description": f"1 to {MAX_LINES} lines, one per product; prices come from the catalog"},
    )
    shipping_address = ma.fields.Nested(ShippingAddressInSchema, required=True)
    notes = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(max=1000))

    @ma.validates_schema
    def _one_line_per_product(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        seen: dict[Any, int] = {}
        errors: dict[str, Any] = {}
        for index, line in enumerate(data.get("items") or []):
            if line["product_id"] in seen:
                errors[str(index)] = {"product_id": [f"Duplicate of line {seen[line['product_id']]}."]}
            seen.setdefault(line["product_id"], index)
        if errors:
            raise ma.ValidationError({"items": errors})


class ShipSchema(Schema):
    tracking_number = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(min=1, max=100))


class CancelSchema(Schema):
    reason = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(max=500))


class OrderLineSchema(Schema):
    product_id = ma.fields.UUID()
    sku = ma.fields.String()
    name = ma.fields.String()
    unit_price = Money()
    quantity = ma.fields.Integer()
    line_total = Money()


class OrderSchema(Schema):
    id = ma.fields.UUID()
    number = ma.fields.String(metadata={"example": "ORD-2026-000123"})
    status = ma.fields.String(metadata={"enum": list(STATUSES)})
    items = ma.fields.List(ma.fields.Nested(OrderLineSchema))
    subtotal = Money()
    tax = Money()
    shipping = Money()
    total = Money()
    refunded_amount = Money(allow_none=True)
    currency = ma.fields.String(metadata={"description": "ISO 4217", "example": "USD", "pattern": "^[A-Z]{3}$"})
    shipping_address = ma.fields.Nested(ShippingAddressSchema)
    notes = ma.fields.String(allow_none=True)
    tracking_number = ma.fields.String(allow_none=True)
    user_id = ma.fields.UUID()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    paid_at = UTCDateTime(allow_none=True)
    shipped_at = UTCDateTime(allow_none=True)
    delivered_at = UTCDateTime(allow_none=True)
    cancelled_at = UTCDateTime(allow_none=True)


class OrderEventSchema(Schema):
    from_status = ma.fields.String(allow_none=True, metadata={"enum": [*STATUSES, None]})  # null: placed
    to_status = ma.fields.String(metadata={"enum": list(STATUSES)})
    actor_id = ma.fields.UUID(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    at = UTCDateTime()


class IdempotencyKeyField(ma.fields.String):
    """The ``Idempotency-Key`` header: 1 to 255 visible ASCII characters (inner spaces
    allowed), as a structured-field string, quoted (``"k1"``) or not (``k1``)."""

    _VISIBLE = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")
    # What is taken, exactly: unquoted, no comma (a header sent twice arrives joined with one:
    # "a, b") and no quote; quoted, anything visible but a quote between the two.
    PATTERN = (
        r"^([\x21\x23-\x2b\x2d-\x7e]([\x20\x21\x23-\x2b\x2d-\x7e]*[\x21\x23-\x2b\x2d-\x7e])?"
        r'|"[\x20\x21\x23-\x7e]+")$'
    )
    _VALID = re.compile(PATTERN)

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": self.PATTERN, "minLength": 1, "maxLength": 255, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        key: str = super()._deserialize(value, attr, data, **kwargs)
        if not (len(key) <= 255 and self._VISIBLE.fullmatch(key)):
            raise ma.ValidationError("Must be 1 to 255 visible ASCII characters.")
        if not self._VALID.fullmatch(key):
            raise ma.ValidationError('Send one key (a key holding a comma is sent quoted: "a,b").')
        return key[1:-1] if key.startswith('"') else key


class OrderCreateHeadersSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    idempotency_key = IdempotencyKeyField(
        data_key="Idempotency-Key",
        metadata={
            "description": (
                "Replays the first response (header Idempotent-Replayed: true) for 24 h; the same key with "
                "another body is a 422 IDEMPOTENCY_KEY_REUSED, one still in flight a 409 IDEMPOTENCY_CONFLICT."
            )
        },
    )


class OrderQueryArgsSchema(CursorListArgsSchema):
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    created_after = UTCDateTime()
    created_before = UTCDateTime()
    user_id = ma.fields.UUID(metadata={"description": "Staff only"})
    sort = SortField(allowed=("created_at", "total"))
