"""Schemas of the orders domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
import pycountry

from app.api import Money, Schema, UTCDateTime
from app.orders.models import STATUSES
from app.pagination import CursorListArgsSchema, SortField

MAX_LINES = 50
MAX_QUANTITY = 100


def _country(value: str) -> None:
    if not (len(value) == 2 and value.isupper() and pycountry.countries.get(alpha_2=value)):
        raise ma.ValidationError("Must be an ISO 3166-1 alpha-2 country code, e.g. US or DE.")


class ShippingAddressSchema(Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=120))
    line1 = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    line2 = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(max=200))
    city = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    postal_code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=20))
    country = ma.fields.String(required=True, validate=_country)


class OrderLineInSchema(Schema):
    product_id = ma.fields.UUID(required=True)
    quantity = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=MAX_QUANTITY))


class OrderCreateSchema(Schema):
    items = ma.fields.List(
        ma.fields.Nested(OrderLineInSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_LINES),
        metadata={"description": f"1 to {MAX_LINES} lines, one per product; prices come from the catalog"},
    )
    shipping_address = ma.fields.Nested(ShippingAddressSchema, required=True)
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
    currency = ma.fields.String()
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
    from_status = ma.fields.String(allow_none=True)
    to_status = ma.fields.String()
    actor_id = ma.fields.UUID(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    at = UTCDateTime()


class OrderQueryArgsSchema(CursorListArgsSchema):
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    created_after = UTCDateTime()
    created_before = UTCDateTime()
    user_id = ma.fields.UUID(metadata={"description": "Staff only"})
    sort = SortField(allowed=("created_at", "total"))
