"""Schemas of the uploads domain: the upload out, a direct upload in and out, list and content args."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from app.pagination import CursorListArgsSchema
from app.schema import (
    FullMatch,
    IfMatchSchema,
    IfNoneMatchSchema,
    Integer,
    Schema,
    TrimmedString,
    UTCDateTime,
    not_blank_pattern,
)
from app.uploads.models import CLIENT_PURPOSES, FILENAME_MAX, THUMBNAILS, Purpose, Status, Upload
from app.uploads.urls import content_url

PURPOSE_VALUES = [p.value for p in Purpose]
CLIENT_PURPOSE_VALUES = [p.value for p in CLIENT_PURPOSES]
STATUS_VALUES = [s.value for s in Status]
# A file's size as JSON Schema can say it; each purpose's own limit (config) is a 413.
SIZE_MAX = 2**40
# Parameters are visible ASCII and spaces (RFC 9110): spelled out, since "." means another
# set in ECMA-262 (no CR, U+2028, U+2029) than in Python (all but LF).
MEDIA_TYPE_PATTERN = (
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}(;[\x20-\x7e]{0,120})?$"
)
NO_CONTROL_CHARACTERS = r"^[^\u0000-\u001f\u007f]*$"


# --- out -------------------------------------------------------------------------------


class ThumbnailsSchema(Schema):
    """Thumbnails of a product image (their longest side, at most)."""

    small = ma.fields.String(dump_only=True, metadata={"format": "uri", "description": "256 px"})
    medium = ma.fields.String(dump_only=True, metadata={"format": "uri", "description": "1024 px"})


class ContentUrl(ma.fields.String):
    """The URL of an upload's content, once it is ready to be served."""

    def serialize(self, attr: str, obj: Any, accessor: Any = None, **kwargs: Any) -> str | None:
        upload: Upload = obj
        return content_url(upload.id) if upload.status == Status.READY else None


class UploadSchema(Schema):
    id = ma.fields.UUID(dump_only=True)
    purpose = ma.fields.String(dump_only=True, metadata={"enum": PURPOSE_VALUES})
    status = ma.fields.String(dump_only=True, metadata={"enum": STATUS_VALUES})
    filename = ma.fields.String(dump_only=True, metadata={"description": "As the client named it (shown only)"})
    content_type = ma.fields.String(
        dump_only=True, allow_none=True, metadata={"description": "Sniffed from the content; null until received"}
    )
    size = ma.fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Bytes of the content served (a product image's re-encoded file, once ready)"},
    )
    sha256 = ma.fields.String(
        dump_only=True, allow_none=True, metadata={"description": "Hex SHA-256 of the content served"}
    )
    width = ma.fields.Integer(dump_only=True, allow_none=True, metadata={"description": "Product images, once ready"})
    height = ma.fields.Integer(dump_only=True, allow_none=True, metadata={"description": "Product images, once ready"})
    failure_reason = ma.fields.String(dump_only=True, allow_none=True, metadata={"description": "When failed"})
    url = ContentUrl(
        dump_only=True, allow_none=True, metadata={"format": "uri", "description": "The content, once ready"}
    )
    created_at = UTCDateTime(dump_only=True)


class UploadTargetSchema(Schema):
    """Send the file here: a multipart/form-data POST of every field in ``fields``, then ``file``."""

    method = ma.fields.Constant("POST", dump_only=True, metadata={"type": "string", "enum": ["POST"]})
    url = ma.fields.String(dump_only=True, metadata={"format": "uri"})
    # Not named ``fields``: that is the attribute where a marshmallow schema keeps its fields.
    form_fields = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.String(), dump_only=True, data_key="fields", attribute="fields"
    )
    expires_at = UTCDateTime(dump_only=True)


class DirectUploadSchema(Schema):
    upload = ma.fields.Nested(UploadSchema, dump_only=True)
    target = ma.fields.Nested(UploadTargetSchema, dump_only=True)


# --- in --------------------------------------------------------------------------------


class Filename(TrimmedString):
    default_error_messages = {"control": "Must not contain control characters."}
    _NO_CONTROL = re.compile(NO_CONTROL_CHARACTERS)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validate=ma.validate.Length(min=1, max=FILENAME_MAX),
            metadata={"pattern": not_blank_pattern(r"\u0000-\u001f\u007f"), "example": "mug.jpg"},
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        # The name as sent, as the pattern sees it: validators would see it trimmed (a
        # trailing newline or tab slipped through them).
        if isinstance(value, str) and self._NO_CONTROL.fullmatch(value) is None:
            raise self.make_error("control")
        return super()._deserialize(value, attr, data, **kwargs)


def _purpose(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=ma.validate.OneOf(CLIENT_PURPOSE_VALUES),
        metadata={"description": "What the file is for; it decides the allowed types and the size limit"},
        **kwargs,
    )


class DirectUploadCreateSchema(Schema):
    purpose = _purpose(required=True)
    filename = Filename(required=True)
    size = Integer(
        required=True,
        validate=ma.validate.Range(min=1, max=SIZE_MAX),
        metadata={"description": "Exact size in bytes; over the purpose's limit is a 413"},
    )
    content_type = ma.fields.String(
        required=True,
        validate=FullMatch(MEDIA_TYPE_PATTERN, error="Not a media type."),
        metadata={"description": "The client's guess; the API sniffs the content itself", "example": "image/png"},
    )


class UploadFormSchema(Schema):
    """``POST /uploads``: send ``purpose`` before ``file`` so that an oversized file is refused
    as soon as it passes its purpose's limit (otherwise at the largest limit)."""

    purpose = _purpose(required=True)
    file = ma.fields.Raw(
        required=True, metadata={"type": "string", "format": "binary", "description": "The file's bytes"}
    )


class TargetFormSchema(Schema):
    """A direct upload to the API's own target (``file://`` storage): the target's fields, then the file."""

    key = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    policy = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))
    file = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


# --- arguments -------------------------------------------------------------------------


class UploadQueryArgsSchema(CursorListArgsSchema):
    purpose = ma.fields.String(validate=ma.validate.OneOf(PURPOSE_VALUES))
    status = ma.fields.String(validate=ma.validate.OneOf(STATUS_VALUES))


class ContentHeadersSchema(IfMatchSchema, IfNoneMatchSchema):
    """The conditions a file's content answers (304 on a match, 412 on another file)."""

    class Meta:
        unknown = ma.EXCLUDE  # every other header (said again: mypy wants one Meta of two bases)


class ContentArgsSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    variant = ma.fields.String(
        validate=ma.validate.OneOf([v.value for v in THUMBNAILS]),
        metadata={"description": "A thumbnail of a product image instead of the image"},
    )
