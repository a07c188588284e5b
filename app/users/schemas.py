"""Schemas of the users domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from app.pagination import ListArgsSchema, SortField
from app.permissions import Role
from app.schema import Boolean, QueryBoolean, Schema, UTCDateTime
from app.users.passwords import MAX_LENGTH, MIN_LENGTH


class EmailAddress(ma.fields.Email):
    """An email address, trimmed and lower-cased (accounts are matched case-insensitively)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if isinstance(value, str):
            value = value.strip().lower()
        text: str = super()._deserialize(value, attr, data, **kwargs)
        return text


def full_name_field(*, required: bool = False) -> ma.fields.String:
    return ma.fields.String(required=required, validate=ma.validate.Length(min=1, max=120))


def new_password_field(*, required: bool = False) -> ma.fields.String:
    """A password being chosen: the length rule here, the rest of the policy in the service."""
    return ma.fields.String(
        required=required,
        load_only=True,
        validate=ma.validate.Length(min=MIN_LENGTH, max=MAX_LENGTH),
        metadata={
            "description": f"At least {MIN_LENGTH} characters, not all of one kind, not the email address, "
            "not a common or easily guessed password"
        },
    )


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
    password = new_password_field()
    current_password = ma.fields.String(
        load_only=True,
        validate=ma.validate.Length(min=1, max=MAX_LENGTH),
        metadata={"description": "Required with password"},
    )

    @ma.validates_schema
    def _current_password_with_password(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if "password" in data and not data.get("current_password"):
            raise ma.ValidationError("Required to change the password.", "current_password")


class UserAdminUpdateSchema(Schema):
    full_name = full_name_field()
    role = ma.fields.String(validate=ma.validate.OneOf([r.value for r in Role]))
    is_active = Boolean()


class UserQueryArgsSchema(ListArgsSchema):
    role = ma.fields.String(validate=ma.validate.OneOf([r.value for r in Role]))
    is_active = QueryBoolean()
    q = ma.fields.String(validate=ma.validate.Length(min=1, max=100), metadata={"description": "Search email and name"})
    sort = SortField(allowed=("created_at", "email"))
