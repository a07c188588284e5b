"""Schemas of the auth domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from app.schema import Schema, UTCDateTime
from app.users.passwords import policy_problems
from app.users.schemas import EmailAddress, full_name_field, new_password_field


def password_field() -> ma.fields.String:
    """A password being checked (login): any length the API could ever have set."""
    return ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(min=1, max=256))


def token_field() -> ma.fields.String:
    return ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(min=16, max=128))


def _check_new_password(data: Mapping[str, Any]) -> None:
    """The password policy, reported beside every other field error (``details`` names
    each failing field, whether a field rule or the policy refused it)."""
    if "password" in data:
        problems = policy_problems(data["password"], email=data.get("email"), full_name=data.get("full_name"))
        if problems:
            raise ma.ValidationError(" ".join(problems), "password")


class RegisterSchema(Schema):
    email = EmailAddress(required=True)
    password = new_password_field(required=True)
    full_name = full_name_field(required=True)

    @ma.validates_schema(skip_on_field_errors=False)
    def _password_policy(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        _check_new_password(data)


class LoginSchema(Schema):
    email = EmailAddress(required=True)
    password = password_field()


class TokenPairSchema(Schema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Access token lifetime in seconds"})


class VerifyEmailSchema(Schema):
    token = token_field()


class ForgotPasswordSchema(Schema):
    email = EmailAddress(required=True)


class ResetPasswordSchema(Schema):
    token = token_field()
    password = new_password_field(required=True)

    @ma.validates_schema(skip_on_field_errors=False)
    def _password_policy(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        _check_new_password(data)  # without the account's email here: the service adds it


class AcceptedSchema(Schema):
    message = ma.fields.String(required=True)


class SessionSchema(Schema):
    id = ma.fields.UUID(dump_only=True)
    created_at = UTCDateTime(dump_only=True)
    last_used_at = UTCDateTime(dump_only=True)
    user_agent = ma.fields.String(dump_only=True, allow_none=True)
    ip = ma.fields.String(dump_only=True, allow_none=True)
    current = ma.fields.Boolean(dump_only=True, metadata={"description": "The session of the calling token"})
