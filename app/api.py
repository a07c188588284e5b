"""Project-wide flask-smorest behaviour: the envelope, strict parsing, typed decorators.

Every domain blueprint is an ``app.api.Blueprint`` (and every schema an
``app.schema.Schema``), so that what API.md promises for all endpoints is implemented
once, here; the OpenAPI document's conventions live in ``app.openapi``.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache, wraps
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import flask_smorest
import marshmallow as ma
from flask import Flask, Response, current_app, g, request
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, is_json_request
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict
from werkzeug.http import parse_set_header

from app.errors import BadRequest, ErrorDetail, NotFound, PayloadTooLarge, ValidationFailed
from app.openapi import (
    ContractMarshmallowPlugin,
    ContractPlugin,
    Direction,
    ErrorResponseSchema,
    declare,
    envelope_doc,
    error_response_doc,
    register_spec_conventions,
)
from app.pagination import Page
from app.schema import text_problem

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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
        if location in _QUERY_LOCATIONS:
            _refuse_repeated_parameters(schema, req.args)
        # PostgreSQL text cannot hold NUL, and no text holds an unpaired surrogate (JSON's
        # "\ud800" escape decodes to one, which no database or UTF-8 encoder takes): refuse
        # them here, naming the field, rather than as a database error later.
        details: list[ErrorDetail] = [{"field": name, "message": message} for name, message in _bad_text_fields(data)]
        if details:
            raise ValidationFailed(details=details)
        return data

    def load_json(self, req: Any, schema: ma.Schema) -> Any:
        body = req.get_data(cache=True)
        # Without a Content-Length (chunked), Werkzeug stops reading at the limit instead
        # of refusing: a body that filled it was cut short, and is too large.
        if req.content_length is None and req.max_content_length is not None and len(body) >= req.max_content_length:
            raise PayloadTooLarge()
        # A form's body was read (into request.form) before this: get_data() is then empty.
        sent = bool(body) or bool(req.content_length) or (req.mimetype in _FORM_TYPES and bool(req.form or req.files))
        if sent and not is_json_request(req):
            raise BadRequest("Content-Type must be application/json")
        try:
            data = super().load_json(req, schema)
        except RecursionError as exc:  # nesting deeper than the decoder's stack
            raise BadRequest("Malformed JSON body: nested too deeply") from exc
        except ValueError as exc:  # an integer of more digits than Python converts (not a JSONDecodeError)
            raise BadRequest("Malformed JSON body: a number too long") from exc
        if data is webargs_core.missing:
            return {}
        if not isinstance(data, dict):
            raise BadRequest("Request body must be a JSON object")
        return data


_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _refuse_repeated_parameters(schema: ma.Schema, args: MultiDict[str, str]) -> None:
    """A parameter that takes one value, given twice (``page=1&page=2``): a 422, not the
    first value silently."""
    repeated = [name for name, values in args.lists() if len(values) > 1]
    if not repeated:
        return
    by_name = {field.data_key or name: field for name, field in schema.fields.items()}
    details: list[ErrorDetail] = [
        {"field": name, "message": "Give this parameter once."}
        for name in repeated
        if name in by_name and not isinstance(by_name[name], ma.fields.List | ma.fields.Tuple)
    ]
    if details:
        raise ValidationFailed(details=details)


def _bad_text_fields(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Dotted names of the values (or keys) in a parsed body or query string that are not
    text a database can store, each with what is wrong."""
    if isinstance(data, MultiDictProxy):
        data = data.data
    if isinstance(data, MultiDict | Mapping):
        items = data.items(multi=True) if isinstance(data, MultiDict) else data.items()
        for key, value in items:
            name = f"{prefix}.{key}" if prefix else str(key)
            problem = text_problem(str(key))
            if problem is not None:
                yield name, problem
            else:
                yield from _bad_text_fields(value, name)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _bad_text_fields(value, f"{prefix}.{index}" if prefix else str(index))
    elif isinstance(data, str) and (problem := text_problem(data)) is not None:
        yield prefix, problem


_QUERY_LOCATIONS = frozenset({"query", "querystring"})
_BODY_LOCATIONS = frozenset({"json", "form", "files"})
_NO_FIELDS = ma.Schema()


def _refuse_undeclared_input() -> None:
    """API.md: unknown query parameters and body fields are a 422. An operation that
    declares a query string or a body refuses what its schema does not name (webargs);
    for one that declares neither, this refuses any query parameter, and any body but
    nothing or ``{}`` (a body that is not a JSON object is a 400, as everywhere)."""
    # Read from the WSGI environ: every request pays for this check (a cached catalog
    # answer is about 0.4 ms), and most send neither a query string nor a body.
    environ = request.environ
    sends_query = bool(environ.get("QUERY_STRING"))
    sends_body = environ.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ
    if not (sends_query or sends_body) or not environ.get("PATH_INFO", "").startswith("/api/v1/"):
        return
    method = environ["REQUEST_METHOD"]
    view = current_app.view_functions.get(request.endpoint or "")
    declared = _declared_input(view, "get" if method == "HEAD" else method.lower())
    if declared is None:
        return
    takes_query, takes_body = declared
    if not takes_query and sends_query and request.args:
        raise ValidationFailed(details=[{"field": name, "message": "Unknown field."} for name in request.args])
    if not takes_body and sends_body and request.get_data(cache=True):
        unknown = Blueprint.ARGUMENTS_PARSER.load_json(request, _NO_FIELDS)
        if unknown:
            raise ValidationFailed(details=[{"field": str(name), "message": "Unknown field."} for name in unknown])


@lru_cache(maxsize=1024)
def _declared_input(view: Callable[..., Any] | None, method: str) -> tuple[bool, bool] | None:
    """Whether the operation of ``view`` and ``method`` declares a query string, and a body,
    as flask-smorest documents it (the view's ``_apidoc``); None for a view it does not
    document. (Views live as long as their app: worked out once, not per request.)"""
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, method, None)
    doc = getattr(view, "_apidoc", None)
    if not isinstance(doc, dict):
        return None
    declared = {parameter["in"] for parameter in doc.get("arguments", {}).get("parameters", [])}
    takes_body = bool(declared & _BODY_LOCATIONS) or "requestBody" in doc.get("manual_doc", {})
    return bool(declared & _QUERY_LOCATIONS), takes_body


def _reject_nul_in_path() -> None:
    """No resource is named with a NUL byte (``/products/a%00b``): a 404, not a DB error.
    A query string that is not UTF-8 (raw bytes the client did not percent-encode, or
    percent-encoded ones) is a 400: Werkzeug's parse of the first raises, a 500 wherever
    the arguments are read, and of the second silently replaces them."""
    if "\x00" in request.path:
        raise NotFound()
    query = request.environ.get("QUERY_STRING", "")
    if not query.isascii():
        try:
            query = query.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise BadRequest("The query string is not UTF-8: percent-encode its bytes") from None
    # Percent-encoded bytes that are not UTF-8 (%FF, an encoded surrogate): Werkzeug puts
    # U+FFFD in their place, and a search would quietly look for something else.
    if "%" in query:
        try:
            parse_qsl(query, keep_blank_values=True, errors="strict")
        except UnicodeError:
            raise BadRequest("The query string's percent-encoded bytes are not UTF-8") from None


# Statuses that tell a client when to come back; flask-limiter stamps every response.
RETRY_AFTER_STATUSES = frozenset({423, 429, 503})


def _tidy_headers(response: Response) -> Response:
    status = response.status_code
    if status not in RETRY_AFTER_STATUSES:
        response.headers.pop("Retry-After", None)
    if status == 204:  # nothing to type (Flask would say text/html)
        response.headers.pop("Content-Type", None)
    if current_app.config["CORS_ORIGINS"]:
        _vary_on_origin(response)
    return response


def _vary_on_origin(response: Response) -> None:
    """With CORS on, every answer depends on ``Origin`` (allowed: the CORS headers; not:
    none), so a shared cache must keep them apart. flask-cors says so only when several
    origins are configured; its ``Vary`` and the app's are merged into one header."""
    varies = [value for line in response.headers.getlist("Vary") for value in parse_set_header(line)]
    response.headers["Vary"] = ", ".join(dict.fromkeys([*varies, "Origin"]))


def init_request_conventions(app: Flask) -> None:
    """Request hooks every endpoint shares. Call before ``limiter.init_app``: Flask runs
    after-request hooks in reverse order, so this one sees the limiter's headers."""
    app.before_request(_reject_nul_in_path)
    app.before_request(_refuse_undeclared_input)
    app.after_request(_tidy_headers)


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorResponseSchema

    def init_app(self, app: Flask, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        plugins = {"marshmallow_plugin": ContractMarshmallowPlugin(), "extra_plugins": [ContractPlugin()]}
        super().init_app(app, spec_kwargs={**plugins, **(spec_kwargs or {})})
        register_spec_conventions(self.spec, self.ma_plugin)

    def _register_error_handlers(self) -> None:
        """Errors are mapped by ``app.errors`` alone, for every layer."""

    def _register_responses(self) -> None:
        """Each status's component response: the error envelope and the headers it carries."""
        for status in http.HTTPStatus:
            self.spec.components.response(status.name, error_response_doc(status), lazy=True)
        self.spec.components.response(
            self.DEFAULT_ERROR_RESPONSE_NAME, error_response_doc(http.HTTPStatus.INTERNAL_SERVER_ERROR), lazy=True
        )

    def _register_pagination_header(self) -> None:
        """Lists use ``meta`` and ``Link`` (app.pagination), not flask-smorest's header."""


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = RequestParser()

    @staticmethod
    def _make_doc_response_schema(schema: Any) -> Any:
        if isinstance(schema, ma.Schema):
            return envelope_doc(schema)
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

    def arguments(
        self, schema: type[ma.Schema] | ma.Schema, *, location: str = "json", **kwargs: Any
    ) -> Callable[[F], F]:
        """Parse and document a request part; a JSON body's schema is a request schema."""
        if location == "json":
            declare(schema, Direction.REQUEST)
        if isinstance(schema, type):
            # One instance for every request: webargs would build (and deep-copy the
            # fields of) a new one per request from a class.
            schema = schema()
        decorator: Callable[[F], F] = super().arguments(schema, location=location, **kwargs)
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
        header added) or, for a list that is not paginated, a sequence (``meta`` is its
        ``total``); a 204 view returns nothing and sends no body.
        """
        smorest_decorator = super().response(status_code, schema, **kwargs)
        many = isinstance(schema, ma.Schema) and bool(schema.many)

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
                if many and isinstance(result, list):
                    g.list_meta = {"total": len(result)}
                return result

            wrapped: F = smorest_decorator(unpack)
            return wrapped

        return decorator
