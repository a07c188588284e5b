"""The OpenAPI document's conventions, applied once to every schema and operation.

A client generated from the document must type what the app actually sends, so:

- **Direction.** Every schema is a request schema or a response schema, never both (a
  shape used both ways is two schemas). A response schema lists every field in
  ``required`` — the app always sends it; a nullable field is required and nullable —
  unless the field's metadata says ``"optional": True``. A request schema lists what the
  API requires. ``declare`` records the direction; ``Blueprint.arguments`` and
  ``Blueprint.response`` call it, so a new schema cannot forget it.
- **Envelopes.** A response is documented inside ``{"data": …}``; a list adds ``meta``,
  whose type follows the operation's parameters: ``PageMeta`` for page style,
  ``oneOf [PageMeta, CursorMeta]`` when cursors are offered too, ``TotalMeta`` for a list
  that is not paginated.
- **Operations** have a unique snake_case ``operationId`` (refused at startup otherwise),
  and every response documents the headers it sends.
"""

from __future__ import annotations

import enum
import http
import re
from collections.abc import Iterator
from typing import Any

import marshmallow as ma
from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import get_fields, resolve_schema_cls
from apispec.ext.marshmallow.openapi import OpenAPIConverter

from app.pagination import FieldsField, SortField
from app.schema import NO_NUL_PATTERN, Money, QueryBoolean, Schema, UTCDateTime

# --- schema directions ---------------------------------------------------------------


class Direction(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"
    # A resource asked for a subset of its fields (``?fields=``): nothing is required.
    PARTIAL_RESPONSE = "partial response"


_directions: dict[type[ma.Schema], Direction] = {}
_partial_variants: dict[type[ma.Schema], type[ma.Schema]] = {}
# By the component name of the full schema (``Product`` → ``ProductFieldsSchema``).
_partial_variants_by_name: dict[str, type[ma.Schema]] = {}


def _nested_schemas(field: ma.fields.Field[Any]) -> Iterator[Any]:
    if isinstance(field, ma.fields.Nested | ma.fields.Pluck):
        yield field.nested
    elif isinstance(field, ma.fields.List):
        yield from _nested_schemas(field.inner)
    elif isinstance(field, ma.fields.Dict) and field.value_field is not None:
        yield from _nested_schemas(field.value_field)


def declare(schema: type[ma.Schema] | ma.Schema | str, direction: Direction) -> None:
    """Record that ``schema`` (and every schema nested in it) is read or written."""
    cls = resolve_schema_cls(schema)
    assert isinstance(cls, type), cls
    known = _directions.get(cls)
    if known is direction:
        return
    if known is not None:
        raise TypeError(
            f"{cls.__name__} is used both as a {known.value} and a {direction.value} schema: "
            "give each direction its own schema, so that the document can say what is required"
        )
    _directions[cls] = direction
    nested_direction = Direction.RESPONSE if direction is Direction.PARTIAL_RESPONSE else direction
    for field in cls._declared_fields.values():
        for nested in _nested_schemas(field):
            if isinstance(nested, type | ma.Schema | str):
                declare(nested, nested_direction)


def partial_variant(schema_cls: type[ma.Schema]) -> type[ma.Schema]:
    """``<Name>Fields``: the resource with any subset of its fields (sparse fieldsets)."""
    if schema_cls not in _partial_variants:
        name = schema_cls.__name__.removesuffix("Schema") + "FieldsSchema"
        variant = type(name, (schema_cls,), {"__doc__": f"{schema_cls.__name__} with only the requested fields."})
        _partial_variants[schema_cls] = variant
        _partial_variants_by_name[schema_cls.__name__.removesuffix("Schema")] = variant
        declare(variant, Direction.PARTIAL_RESPONSE)
    return _partial_variants[schema_cls]


class ContractConverter(OpenAPIConverter):
    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        json_schema: dict[str, Any] = super().schema2jsonschema(schema)  # type: ignore[no-untyped-call]  # apispec
        cls = resolve_schema_cls(schema)
        direction = _directions.get(cls) if isinstance(cls, type) else None
        properties: dict[str, Any] = json_schema.get("properties", {})
        for prop in properties.values():
            prop.pop("optional", None)
        if direction is Direction.RESPONSE:
            json_schema["required"] = [
                field.data_key or name
                for name, field in get_fields(schema).items()
                if not field.load_only and not field.metadata.get("optional")
            ]
        elif direction is Direction.PARTIAL_RESPONSE:
            json_schema.pop("required", None)
        return json_schema


class ContractMarshmallowPlugin(MarshmallowPlugin):
    Converter = ContractConverter


# --- shared component schemas -------------------------------------------------------------


class ErrorDetailSchema(Schema):
    field = ma.fields.String(allow_none=True, metadata={"description": "The offending field, dotted for nesting"})
    message = ma.fields.String()
    context = ma.fields.Dict(
        metadata={"description": "Machine-readable specifics, when there are any", "optional": True}
    )


class ErrorBodySchema(Schema):
    code = ma.fields.String(metadata={"description": "Stable machine-readable code, e.g. VALIDATION_ERROR"})
    message = ma.fields.String()
    details = ma.fields.List(
        ma.fields.Nested(ErrorDetailSchema), metadata={"description": "One entry per failing field; may be empty"}
    )
    request_id = ma.fields.String(allow_none=True, metadata={"description": "Also in the X-Request-ID header"})


class ErrorResponseSchema(Schema):
    """The error envelope every failure uses."""

    error = ma.fields.Nested(ErrorBodySchema)


class PageMetaSchema(Schema):
    """``meta`` of a page-style list."""

    page = ma.fields.Integer(metadata={"minimum": 1})
    per_page = ma.fields.Integer(metadata={"minimum": 1, "maximum": 100})
    total = ma.fields.Integer(metadata={"minimum": 0, "description": "Items matching the filters"})
    total_pages = ma.fields.Integer(metadata={"minimum": 1})


class CursorMetaSchema(Schema):
    """``meta`` of a cursor-style list."""

    limit = ma.fields.Integer(metadata={"minimum": 1, "maximum": 100})
    next_cursor = ma.fields.String(allow_none=True, metadata={"description": "Pass as ?cursor= for the next page"})
    has_more = ma.fields.Boolean()


class TotalMetaSchema(Schema):
    """``meta`` of a list that is not paginated."""

    total = ma.fields.Integer(metadata={"minimum": 0})


for _schema in (ErrorResponseSchema, PageMetaSchema, CursorMetaSchema, TotalMetaSchema):
    declare(_schema, Direction.RESPONSE)


# --- response headers -----------------------------------------------------------------------

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (echoed when the client sent a sane one); in every log line of it",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-RateLimit-Limit": {
        "description": "Requests allowed in the current window (when rate limiting is on)",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current window",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "Unix time at which the window resets",
        "schema": {"type": "integer"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    },
    "Link": {
        "description": "RFC 8288 links to the first, previous, next and last pages (those that exist)",
        "schema": {"type": "string"},
    },
    "Location": {"description": "The URL of the created (or accepted) resource", "schema": {"type": "string"}},
    # The security headers of app.security, on every response.
    "Cache-Control": {
        "description": "no-store on every answer that carries a token or personal data",
        "schema": {"type": "string"},
    },
    "Content-Security-Policy": {
        "description": "default-src 'none'; frame-ancestors 'none' on JSON",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-Content-Type-Options": {"required": True, "schema": {"type": "string", "enum": ["nosniff"]}},
    "X-Frame-Options": {"required": True, "schema": {"type": "string", "enum": ["DENY"]}},
    "Referrer-Policy": {"required": True, "schema": {"type": "string", "enum": ["no-referrer"]}},
    "Strict-Transport-Security": {"description": "In production", "schema": {"type": "string"}},
}
COMMON_HEADERS = (
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Cache-Control",
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Strict-Transport-Security",
)
# Error statuses whose answer says when to come back.
RETRY_AFTER_STATUSES = {423: True, 429: True, 503: False}


def header_ref(name: str, *, required: bool | None = None) -> dict[str, Any]:
    component = HEADERS[name]
    if required is None or required == component.get("required", False):
        return {"$ref": f"#/components/headers/{name}"}
    return {**component, "required": required}


def common_headers() -> dict[str, Any]:
    return {name: header_ref(name) for name in COMMON_HEADERS}


def error_response_doc(status: http.HTTPStatus) -> dict[str, Any]:
    """The component response flask-smorest names after ``status`` (``NOT_FOUND``…)."""
    headers = common_headers()
    if status in RETRY_AFTER_STATUSES:
        headers["Retry-After"] = header_ref("Retry-After", required=RETRY_AFTER_STATUSES[status])
    if status == http.HTTPStatus.PRECONDITION_FAILED:
        headers["ETag"] = {
            "description": "The resource's current ETag, when this answer knows it (a write that lost "
            "a race to another does not: read the resource again)",
            "schema": {"type": "string"},
        }
    response: dict[str, Any] = {"description": status.phrase, "headers": headers}
    if status >= 400:
        response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    return response


# --- envelopes --------------------------------------------------------------------------

ENVELOPE = "x-envelope"


def _component_name(schema_cls: type[ma.Schema]) -> str:
    return schema_cls.__name__.removesuffix("Schema")


def envelope_doc(schema: ma.Schema) -> dict[str, Any]:
    """The documented body around ``schema``: resolved and named by ``ContractPlugin``."""
    schema_cls = type(schema)
    declare(schema_cls, Direction.RESPONSE)
    if getattr(schema_cls, "SPARSE_FIELDSETS", False):
        partial_variant(schema_cls)
    if schema.many:
        return {"type": "object", ENVELOPE: "list", "properties": {"data": {"type": "array", "items": schema_cls}}}
    return {"type": "object", ENVELOPE: "one", "properties": {"data": schema_cls}}


class ListStyle(enum.Enum):
    PAGE = "page"
    PAGE_OR_CURSOR = "cursor"
    UNPAGINATED = "total"


META = {
    ListStyle.PAGE: {"$ref": "#/components/schemas/PageMeta"},
    ListStyle.PAGE_OR_CURSOR: {
        "oneOf": [{"$ref": "#/components/schemas/PageMeta"}, {"$ref": "#/components/schemas/CursorMeta"}]
    },
    ListStyle.UNPAGINATED: {"$ref": "#/components/schemas/TotalMeta"},
}
_REF = re.compile(r"#/components/schemas/(\w+)$")
_OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _item_name(data: dict[str, Any]) -> str:
    match = _REF.search(data.get("items", data)["$ref"])
    assert match is not None, data
    return match.group(1)


class ContractPlugin(BasePlugin):
    """Checks operation ids; names envelopes; documents the headers every response sends."""

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec
        self.operation_ids: dict[str, str] = {}
        for name, header in HEADERS.items():
            spec.components.header(name, header)

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            self._check_operation_id(f"{method.upper()} {path}", operation)
            if (path or "").startswith("/api/v1/"):
                # Every /api/v1 operation is rate limited, and refuses an undeclared query
                # parameter or body field (422); a body beyond MAX_JSON_BYTES is a 413, and
                # one that is not what its Content-Type says a 400; an unknown id a 404.
                responses = operation.setdefault("responses", {})
                responses.setdefault("429", "TOO_MANY_REQUESTS")
                responses.setdefault("422", "UNPROCESSABLE_ENTITY")
                if "requestBody" in operation:
                    responses.setdefault("400", "BAD_REQUEST")
                    responses.setdefault("413", "REQUEST_ENTITY_TOO_LARGE")
                if "{" in (path or ""):
                    responses.setdefault("404", "NOT_FOUND")
            query = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"}
            style = (
                ListStyle.PAGE_OR_CURSOR
                if "cursor" in query
                else ListStyle.PAGE
                if "page" in query
                else ListStyle.UNPAGINATED
            )
            for status, response in operation.get("responses", {}).items():
                if isinstance(response, dict):
                    self._complete_response(str(status), response, style, sparse="fields" in query)

    def _ref_to(self, schema_cls: type[ma.Schema]) -> dict[str, str]:
        name = _component_name(schema_cls)
        if name not in self.spec.components.schemas:
            self.spec.components.schema(name, schema=schema_cls)
        return {"$ref": f"#/components/schemas/{name}"}

    def _check_operation_id(self, label: str, operation: dict[str, Any]) -> None:
        operation_id = operation.get("operationId")
        if not isinstance(operation_id, str) or not _OPERATION_ID.match(operation_id):
            raise ValueError(f"{label} needs a snake_case operationId (@blp.doc(operationId=...))")
        if self.operation_ids.setdefault(operation_id, label) != label:
            raise ValueError(f"operationId {operation_id!r} of {label} is already {self.operation_ids[operation_id]}")

    def _complete_response(self, status: str, response: dict[str, Any], style: ListStyle, *, sparse: bool) -> None:
        headers = response.setdefault("headers", {})
        for name, ref in common_headers().items():
            headers.setdefault(name, ref)
        if status == "201":
            headers.setdefault("Location", header_ref("Location", required=True))
        content = response.get("content", {}).get("application/json", {})
        envelope = content.get("schema", {})
        kind = envelope.pop(ENVELOPE, None) if isinstance(envelope, dict) else None
        if kind is None:
            return
        data = envelope["properties"]["data"]
        name = _item_name(data)
        variant = _partial_variants_by_name.get(name) if sparse else None
        if variant is not None:
            # ``?fields=``: each item is the full resource or the requested subset of it.
            ref = {"anyOf": [{"$ref": f"#/components/schemas/{name}"}, self._ref_to(variant)]}
            data = {"type": "array", "items": ref} if kind == "list" else ref
            name += "OrFields"
        component: dict[str, Any] = {
            "type": "object",
            "properties": {"data": data},
            "required": ["data"],
            "additionalProperties": False,
        }
        if kind == "list":
            component["properties"]["meta"] = META[style]
            component["required"].append("meta")
            if style is not ListStyle.UNPAGINATED:
                headers.setdefault("Link", header_ref("Link"))
            name += {ListStyle.PAGE: "Page", ListStyle.PAGE_OR_CURSOR: "List", ListStyle.UNPAGINATED: "Items"}[style]
        else:
            name += "Envelope"
        schemas = self.spec.components.schemas
        if name not in schemas:
            self.spec.components.schema(name, component=component)
        elif schemas[name] != component:
            raise ValueError(f"two different envelopes would be named {name}")
        content["schema"] = {"$ref": f"#/components/schemas/{name}"}


# --- fields ------------------------------------------------------------------------------


def _owner(field: ma.fields.Field[Any]) -> Any:
    """The schema a field belongs to (through ``List``/``Dict`` containers)."""
    parent: Any = field.parent
    while isinstance(parent, ma.fields.Field):
        parent = parent.parent
    return parent


def _field_attributes(
    converter: Any, field: ma.fields.Field[Any], ret: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """What the field types of ``app.schema`` promise, for clients and contract testers."""
    sent = field.dump_only or _directions.get(type(_owner(field))) in {Direction.RESPONSE, Direction.PARTIAL_RESPONSE}
    if isinstance(field, Money):
        return {"pattern": Money.OUTPUT_PATTERN if sent else Money.PATTERN, "example": "19.99"}
    if isinstance(field, ma.fields.String) and not sent and "pattern" not in ret and "format" not in ret:
        return {"pattern": NO_NUL_PATTERN}
    return {}


def register_spec_conventions(spec: APISpec, ma_plugin: MarshmallowPlugin) -> None:
    """Custom field types, the bearer scheme and the shared component schemas."""
    for field, openapi_type in (
        (UTCDateTime, ("string", "date-time")),
        (Money, ("string", "decimal")),
        (SortField, ("string", None)),
        (FieldsField, ("string", None)),
        (QueryBoolean, ("boolean", None)),
    ):
        ma_plugin.map_to_openapi_type(field, *openapi_type)  # type: ignore[no-untyped-call]  # unannotated upstream
    assert ma_plugin.converter is not None
    ma_plugin.converter.add_attribute_function(_field_attributes)  # type: ignore[no-untyped-call]  # unannotated upstream
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for schema in (ErrorResponseSchema, PageMetaSchema, CursorMetaSchema, TotalMetaSchema):
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
