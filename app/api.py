"""Project-wide flask-smorest behaviour: the envelope, strict parsing, typed decorators.

Every domain blueprint is an ``app.api.Blueprint`` and every schema an ``app.api.Schema``,
so that what API.md promises for all endpoints is implemented once, here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any, TypeVar

import flask_smorest
import marshmallow as ma
from flask import Flask, Response, g, request
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, is_json_request
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict

from app.errors import BadRequest, ErrorDetail, NotFound, PayloadTooLarge, ValidationFailed
from app.pagination import FieldsField, Page, SortField

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Schema(ma.Schema):
    """Base schema: unknown fields are an error, output keys keep declaration order."""

    class Meta:
        unknown = ma.RAISE
        ordered = True


class TrimmedString(ma.fields.String):
    """A string with surrounding whitespace removed before validation."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        return text.strip()


class UTCDateTime(ma.fields.DateTime):
    """ISO 8601 in UTC with a ``Z`` suffix."""

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        text = value.astimezone(UTC).isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z")

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


class Money(ma.fields.Field[Decimal]):
    """A non-negative amount with at most two decimal places: a string in JSON, both ways.

    API.md: money is a decimal string, never a float. Input is plain ASCII decimal
    notation (``"19.99"``, ``"5"``); a JSON number, an exponent, digit separators or
    non-ASCII digits are refused. Output is always two places (``"19.99"``).
    """

    PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
    # What the OpenAPI document promises (the error messages say more than the pattern).
    PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"

    default_error_messages = {
        "invalid": 'Not a valid amount: a decimal string such as "19.99".',
        "places": "At most two decimal places are allowed.",
        "negative": "Must not be negative.",
        "too_large": "Must be less than 10000000000.",
    }

    def _serialize(self, value: Decimal | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return str(Decimal(value).quantize(Decimal("0.01")))

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Decimal:
        if not isinstance(value, str) or not self.PLAIN_DECIMAL.fullmatch(value.strip()):
            raise self.make_error("invalid")
        try:
            amount = Decimal(value.strip())
        except InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if not amount.is_finite():
            raise self.make_error("invalid")
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(Decimal("0.01")):
            raise self.make_error("places")
        if amount < 0:
            raise self.make_error("negative")
        if amount >= Decimal("10000000000"):
            raise self.make_error("too_large")
        return amount.quantize(Decimal("0.01"))


NUL_CHECKED_LOCATIONS = frozenset({"json", "query", "querystring", "form"})


class RequestParser(FlaskParser):
    """webargs parser with the API.md rules for bodies and query strings.

    - a body that is not JSON, or JSON that is not an object, is a 400;
    - unknown query parameters are a 422 like unknown body fields.
    """

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def _load_location_data(self, *, schema: ma.Schema, req: Any, location: str) -> Any:
        data = super()._load_location_data(schema=schema, req=req, location=location)
        if location not in NUL_CHECKED_LOCATIONS:
            return data
        # PostgreSQL text cannot hold NUL, and no legitimate value carries one: refuse it
        # here, naming the field, rather than as a database error later.
        details: list[ErrorDetail] = [
            {"field": name, "message": "Must not contain NUL characters."} for name in _nul_fields(data)
        ]
        if details:
            raise ValidationFailed(details=details)
        return data

    def load_json(self, req: Any, schema: ma.Schema) -> Any:
        body = req.get_data(cache=True)
        # Without a Content-Length (chunked), Werkzeug stops reading at the limit instead
        # of refusing: a body that filled it was cut short, and is too large.
        if req.content_length is None and req.max_content_length is not None and len(body) >= req.max_content_length:
            raise PayloadTooLarge()
        if body and not is_json_request(req):
            raise BadRequest("Content-Type must be application/json")
        try:
            data = super().load_json(req, schema)
        except RecursionError as exc:  # nesting deeper than the decoder's stack
            raise BadRequest("Malformed JSON body: nested too deeply") from exc
        if data is webargs_core.missing:
            return {}
        if not isinstance(data, dict):
            raise BadRequest("Request body must be a JSON object")
        return data


def _nul_fields(data: Any, prefix: str = "") -> Iterator[str]:
    """Dotted names of the values in a parsed body or query string that hold a NUL."""
    if isinstance(data, MultiDictProxy):
        data = data.data
    if isinstance(data, MultiDict | Mapping):
        items = data.items(multi=True) if isinstance(data, MultiDict) else data.items()
        for key, value in items:
            name = f"{prefix}.{key}" if prefix else str(key)
            if "\x00" in str(key):
                yield name
            else:
                yield from _nul_fields(value, name)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _nul_fields(value, f"{prefix}.{index}" if prefix else str(index))
    elif isinstance(data, str) and "\x00" in data:
        yield prefix


def _reject_nul_in_path() -> None:
    """No resource is named with a NUL byte (``/products/a%00b``): a 404, not a DB error."""
    if "\x00" in request.path:
        raise NotFound()


# Statuses that tell a client when to come back; flask-limiter stamps every response.
RETRY_AFTER_STATUSES = frozenset({423, 429, 503})


def _retry_after_only_when_refused(response: Response) -> Response:
    if response.status_code not in RETRY_AFTER_STATUSES:
        response.headers.pop("Retry-After", None)
    return response


def init_request_conventions(app: Flask) -> None:
    """Request hooks every endpoint shares. Call before ``limiter.init_app``: Flask runs
    after-request hooks in reverse order, so this one sees the limiter's headers."""
    app.before_request(_reject_nul_in_path)
    app.after_request(_retry_after_only_when_refused)


class ListMetaSchema(Schema):
    """``meta`` of a list: page style or cursor style, as the request chose."""

    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    total = ma.fields.Integer()
    total_pages = ma.fields.Integer()
    limit = ma.fields.Integer()
    next_cursor = ma.fields.String(allow_none=True)
    has_more = ma.fields.Boolean()


class ErrorDetailSchema(Schema):
    field = ma.fields.String(allow_none=True, metadata={"description": "The offending field, dotted for nesting"})
    message = ma.fields.String()
    context = ma.fields.Dict(metadata={"description": "Machine-readable specifics, when there are any"})


class ErrorBodySchema(Schema):
    code = ma.fields.String(metadata={"description": "Stable machine-readable code, e.g. VALIDATION_ERROR"})
    message = ma.fields.String()
    details = ma.fields.List(ma.fields.Nested(ErrorDetailSchema))
    request_id = ma.fields.String(allow_none=True)


class ErrorSchema(Schema):
    """The error envelope every failure uses."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


_envelopes: dict[tuple[str, bool], type[ma.Schema]] = {}


def envelope_schema(schema: ma.Schema) -> type[ma.Schema]:
    """The documented shape ``{"data": …}`` (and ``"meta"`` for lists) around ``schema``."""
    name = type(schema).__name__.removesuffix("Schema")
    key = (name, bool(schema.many))
    if key not in _envelopes:
        if schema.many:
            attrs: dict[str, Any] = {
                "data": ma.fields.List(ma.fields.Nested(type(schema)), required=True),
                "meta": ma.fields.Nested(ListMetaSchema, required=True),
            }
            class_name = f"{name}ListEnvelopeSchema"
        else:
            attrs = {"data": ma.fields.Nested(type(schema), required=True)}
            class_name = f"{name}EnvelopeSchema"
        _envelopes[key] = type(class_name, (Schema,), attrs)
    return _envelopes[key]


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        """Errors are mapped by ``app.errors`` alone, for every layer."""


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = RequestParser()

    @staticmethod
    def _make_doc_response_schema(schema: Any) -> Any:
        if isinstance(schema, ma.Schema):
            return envelope_schema(schema)
        return schema

    @staticmethod
    def _prepare_response_content(data: Any) -> Any:
        body: dict[str, Any] = {"data": data}
        meta = g.pop("list_meta", None)
        if meta is not None:
            body["meta"] = meta
        return body

    # Typed facades over flask-smorest's (untyped) decorators.

    def route(self, rule: str, *, parameters: list[Any] | None = None, **options: Any) -> Callable[[T], T]:
        decorator: Callable[[T], T] = super().route(rule, parameters=parameters, **options)
        return decorator

    def arguments(self, schema: type[ma.Schema] | ma.Schema, **kwargs: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = super().arguments(schema, **kwargs)
        return decorator

    def doc(self, **kwargs: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = flask_smorest.Blueprint.doc(**kwargs)
        return decorator

    def alt_response(self, status_code: int, **kwargs: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = super().alt_response(status_code, **kwargs)
        return decorator

    def response(
        self, status_code: int, schema: type[ma.Schema] | ma.Schema | None = None, **kwargs: Any
    ) -> Callable[[F], F]:
        """Document and serialize a success response inside the envelope.

        A view may return a ``Page`` (its items are serialized, its ``meta`` and ``Link``
        header added); a 204 view returns nothing and sends no body.
        """
        smorest_decorator = super().response(status_code, schema, **kwargs)

        def decorator(func: F) -> F:
            @wraps(func)
            def unpack(*args: Any, **kw: Any) -> Any:
                result = func(*args, **kw)
                if status_code == 204:
                    headers = result[1] if isinstance(result, tuple) else {}
                    return Response(status=204, headers=headers)
                if isinstance(result, Page):
                    g.list_meta = result.meta
                    return result.items, result.headers()
                return result

            wrapped: F = smorest_decorator(unpack)
            return wrapped

        return decorator


def _documented_patterns(
    converter: Any, field: ma.fields.Field[Any], ret: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """The input grammar of money fields, for clients and contract testers alike."""
    if isinstance(field, Money) and not field.dump_only:
        return {"pattern": Money.PATTERN, "example": "19.99"}
    return {}


def register_spec_conventions(api: Api) -> None:
    """Document custom fields and the bearer scheme in the OpenAPI document."""
    api.register_field(UTCDateTime, "string", "date-time")
    api.register_field(Money, "string", "decimal")
    api.register_field(SortField, "string", None)
    api.register_field(FieldsField, "string", None)
    api.ma_plugin.converter.add_attribute_function(_documented_patterns)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
