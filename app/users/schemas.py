"""Schemas of the users domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from app.api import Schema, UTCDateTime
from app.pagination import ListArgsSchema, SortField
from app.permissions import Role


class EmailAddress(ma.fields.Email):
    """An email address, trimmed and lower-cased (accounts are matched case-insensitively)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if isinstance(value, str):
            value = value.strip().lower()
        text: str = super()._deserialize(value, attr, data, **kwargs)
        return text


def full_name_field(*, required: bool = False) -> ma.fields.String:
    return ma.fields.String(required=required, validate=ma.validate.Length(min=1, max=120))


class UserSchema(Schema):
    id = ma.fields.UUID(dump_only=True)
    email = ma.fields.String(dump_only=True)
    full_name = ma.fields.String(dump_only=True)
    role = ma.fields.String(dump_only=True, metadata={"enum": [r.value for r in Role]})
    is_active = ma.fields.Boolean(dump_only=True)
    email_verified_at = UTCDateTime(dump_only=True, allow_none=True)
    created_at = UTCDateTime(dump_only=True)
    updated_at = UTCDateTime(dump_only=True)


class UserMeUpdateSchema(Schema):
    full_name = full_name_field()
    password = ma.fields.String(load_only=True, validate=ma.validate.Length(max=256))
    current_password = ma.fields.String(load_only=True, validate=ma.validate.Length(max=256))

    @ma.validates_schema
    def _current_password_with_password(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if "password" in data and not data.get("current_password"):
            raise ma.ValidationError("Required to change the password.", "current_password")


class UserAdminUpdateSchema(Schema):
    full_name = full_name_field()
    role = ma.fields.String(validate=ma.validate.OneOf([r.value for r in Role]))
    is_active = ma.fields.Boolean()


class UserQueryArgsSchema(ListArgsSchema):
    role = ma.fields.String(validate=ma.validate.OneOf([r.value for r in Role]))
    is_active = ma.fields.Boolean()
    q = ma.fields.String(validate=ma.validate.Length(min=1, max=100), metadata={"description": "Search email and name"})
    sort = SortField(allowed=("created_at", "email"))
