"""Schemas of the users domain."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from app.pagination import ListArgsSchema, SortField
from app.permissions import Role
from app.schema import (
    NAME_DESCRIPTION,
    NAME_PATTERN,
    Boolean,
    QueryBoolean,
    Schema,
    TrimmedString,
    UTCDateTime,
    name_problem,
)
from app.users.passwords import MAX_LENGTH, MIN_LENGTH

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


class EmailAddress(ma.fields.String):
    """A plain ``local@domain`` address, lower-cased (accounts are matched case-insensitively).

    No quoted local part, no comments, no address literal, no surrounding whitespace, ASCII
    only (an international domain is given in its ``xn--`` form), at most 64 characters before
    the ``@``. The length is checked before
    anything else: a long string costs nothing, and no pattern ever runs on more than 254
    characters. The document states the same grammar.
    """

    MAX_LENGTH = 254
    PATTERN = f"^{_LOCAL}@{_DOMAIN}$"
    _VALID = re.compile(PATTERN)

    default_error_messages = {
        "invalid": "Not a valid email address (expected local@domain).",
        "too_long": f"Must be at most {MAX_LENGTH} characters long.",
    }

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "email", "maxLength": self.MAX_LENGTH, "pattern": self.PATTERN}
        super().__init__(metadata={**metadata, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if len(value) > self.MAX_LENGTH:  # before any other work on it
            raise self.make_error("too_long")
        # 64: the local part's limit (RFC 5321), which the document's ``format: email`` holds.
        if value.rfind("@") > 64 or not self._VALID.fullmatch(value):
            raise self.make_error("invalid")
        return value.lower()


class FullName(TrimmedString):
    """A person's name: one line of visible text (``app.schema.NAME_PATTERN``, checked as
    sent), no web address (it is the greeting of every mail, where a link would read as ours)."""

    PATTERN = NAME_PATTERN
    default_error_messages = {"url": "Must not contain a web address."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", ma.validate.Length(min=1, max=120))
        kwargs.setdefault("metadata", {"description": NAME_DESCRIPTION + ", without a web address (://, www.)"})
        super().__init__(**kwargs)

    def as_sent_problem(self, text: str) -> str | None:
        return name_problem(text)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "://" in text or "www." in text.lower():
            raise self.make_error("url")
        return text


def full_name_field(*, required: bool = False) -> ma.fields.String:
    return FullName(required=required)


def new_password_field(*, required: bool = False) -> ma.fields.String:
    """A password being chosen: the length rule here (documented as minLength/maxLength), the
    rest of the policy (``app.users.passwords``) where the email and name are known."""
    return ma.fields.String(
        required=required,
        load_only=True,
        validate=ma.validate.Length(
            min=MIN_LENGTH, max=MAX_LENGTH, error="Must be between {min} and {max} characters long."
        ),
        metadata={
            "description": f"At least {MIN_LENGTH} characters, not all of one kind, not the email address or name, "
            "not a common or easily guessed password (a strength estimate of 3 or more out of 4)"
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
