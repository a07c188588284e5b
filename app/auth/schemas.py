"""Schemas of the auth domain."""

from __future__ import annotations

import marshmallow as ma

from app.schema import Schema, UTCDateTime
from app.users.schemas import EmailAddress, full_name_field, new_password_field


def password_field() -> ma.fields.String:
    """A password being checked (login): any length the API could ever have set."""
    return ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(min=1, max=256))


def token_field() -> ma.fields.String:
    return ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(min=16, max=128))


class RegisterSchema(Schema):
    email = EmailAddress(required=True, validate=ma.validate.Length(max=254))
    password = new_password_field(required=True)
    full_name = full_name_field(required=True)


class LoginSchema(Schema):
    email = EmailAddress(required=True, validate=ma.validate.Length(max=254))
    password = password_field()


class TokenPairSchema(Schema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Access token lifetime in seconds"})


class VerifyEmailSchema(Schema):
    token = token_field()


class ForgotPasswordSchema(Schema):
    email = EmailAddress(required=True, validate=ma.validate.Length(max=254))


class ResetPasswordSchema(Schema):
    token = token_field()
    password = new_password_field(required=True)


class AcceptedSchema(Schema):
    message = ma.fields.String(required=True)


class SessionSchema(Schema):
    id = ma.fields.UUID(dump_only=True)
    created_at = UTCDateTime(dump_only=True)
    last_used_at = UTCDateTime(dump_only=True)
    user_agent = ma.fields.String(dump_only=True, allow_none=True)
    ip = ma.fields.String(dump_only=True, allow_none=True)
    current = ma.fields.Boolean(dump_only=True, metadata={"description": "The session of the calling token"})
