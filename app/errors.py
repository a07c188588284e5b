"""Domain errors, and the one place that turns any error into the API.md envelope."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any, ClassVar, NotRequired, TypedDict

from flask import Flask, Response, g, jsonify
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.db import db

log = logging.getLogger(__name__)


class ErrorDetail(TypedDict):
    field: str | None
    message: str
    # Machine-readable specifics, e.g. {"requested": 5, "available": 3} for a short line.
    context: NotRequired[dict[str, Any]]


class DomainError(Exception):
    """A failure a client can cause or must be told about; services raise these."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"
    default_message: ClassVar[str] = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[ErrorDetail] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details or []
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequest(DomainError):
    pass


class Unauthorized(DomainError):
    status = 401
    code = "UNAUTHORIZED"
    default_message = "Authentication required"


class TokenExpired(Unauthorized):
    code = "TOKEN_EXPIRED"
    default_message = "Token has expired"


class TokenRevoked(Unauthorized):
    code = "TOKEN_REVOKED"
    default_message = "Token has been revoked"


class PermissionDenied(DomainError):
    status = 403
    code = "FORBIDDEN"
    default_message = "You do not have permission to perform this action"


class NotFound(DomainError):
    status = 404
    code = "NOT_FOUND"
    default_message = "Resource not found"


class Conflict(DomainError):
    status = 409
    code = "CONFLICT"
    default_message = "Conflict with the current state of the resource"


class InsufficientStock(Conflict):
    code = "INSUFFICIENT_STOCK"
    default_message = "Not enough stock for one or more items"


class InvalidState(Conflict):
    code = "INVALID_STATE"
    default_message = "This action is not allowed in the resource's current state"


class IdempotencyConflict(Conflict):
    code = "IDEMPOTENCY_CONFLICT"
    default_message = "A request with this Idempotency-Key is still being processed"


class PreconditionFailed(DomainError):
    status = 412
    code = "PRECONDITION_FAILED"
    default_message = "The resource has changed since it was read (If-Match mismatch)"


class PayloadTooLarge(DomainError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Request body is too large"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "Unsupported media type"


class ValidationFailed(DomainError):
    status = 422
    code = "VALIDATION_ERROR"
    default_message = "Request validation failed"


class IdempotencyKeyReused(DomainError):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used with a different request"


class AccountLocked(DomainError):
    status = 423
    code = "ACCOUNT_LOCKED"
    default_message = "Account temporarily locked after too many failed logins"


class ServiceUnavailable(DomainError):
    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "A required service is temporarily unavailable"


# Codes for errors raised by Flask, Werkzeug, webargs and extensions, by status.
HTTP_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    417: "EXPECTATION_FAILED",
    422: "VALIDATION_ERROR",
    428: "PRECONDITION_REQUIRED",
    429: "RATE_LIMITED",
    431: "HEADERS_TOO_LARGE",
    500: "INTERNAL_ERROR",
    501: "NOT_IMPLEMENTED",
    503: "SERVICE_UNAVAILABLE",
}

HTTP_MESSAGES: dict[int, str] = {
    400: "Bad request",
    404: "Resource not found",
    405: "Method not allowed",
    413: "Request body is too large",
    422: "Request validation failed",
    429: "Too many requests",
    500: "Internal server error",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "details": details or [],
        "request_id": g.get("request_id"),
    }
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_messages(messages: Any, prefix: str = "") -> Iterator[ErrorDetail]:
    """Turn marshmallow/webargs nested messages into one detail per field.

    ``{"json": {"items": {"0": {"quantity": ["..."]}}}}`` names ``items.0.quantity``;
    the location level (json, query, …) is dropped; schema-level errors have no field.
    """
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            key = str(key)
            if not prefix and key in {"json", "query", "querystring", "form", "files", "headers", "view_args"}:
                yield from flatten_messages(value, "")
                continue
            if key == "_schema":
                yield from flatten_messages(value, prefix)
                continue
            yield from flatten_messages(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(messages, list | tuple):
        texts = [str(m) for m in messages if not isinstance(m, Mapping | list | tuple)]
        if texts:
            yield {"field": prefix or None, "message": " ".join(texts)}
        for nested in messages:
            if isinstance(nested, Mapping | list | tuple):
                yield from flatten_messages(nested, prefix)
    else:
        yield {"field": prefix or None, "message": str(messages)}


def _handle_domain_error(error: DomainError) -> Response:
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def _handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_CODES.get(status) or HTTPStatus(status).name
    message = HTTP_MESSAGES.get(status) or error.description or HTTPStatus(status).phrase
    details: list[ErrorDetail] = []
    headers: dict[str, str] = {}

    data = getattr(error, "data", None)  # webargs' abort() stores messages and headers here
    if isinstance(data, Mapping):
        messages = data.get("messages") or data.get("errors")
        if status == 400 and messages:
            message = "Malformed JSON body" if "json" in messages else "Bad request"
        elif messages:
            details = list(flatten_messages(messages))
        if data.get("message"):
            message = str(data["message"])
        headers.update(data.get("headers") or {})

    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if status == 429:
        message = f"Rate limit exceeded: {error.description}" if error.description else message
    return error_response(status, code, message, details, headers)


def _handle_integrity_error(error: IntegrityError) -> Response:
    db.session.rollback()
    field = _missing_reference(error)
    if field is not None:
        # What the request refers to was there when it was checked, and deleted before the
        # write (a concurrent request): the field's value is no longer valid.
        log.info("reference gone before the write: %s", error.orig)
        details: list[ErrorDetail] = [{"field": field, "message": "Refers to something that no longer exists."}]
        return error_response(422, "VALIDATION_ERROR", "Request validation failed", details=details)
    log.info("integrity error mapped to 409: %s", error.orig)
    return error_response(409, "CONFLICT", "The request conflicts with existing data")


def _missing_reference(error: IntegrityError) -> str | None:
    """The column of a row this request wrote whose foreign key names a row that is gone
    (PostgreSQL names the constraint; the models' metadata its column), or None."""
    orig = error.orig
    diag = getattr(orig, "diag", None)
    if getattr(orig, "sqlstate", None) != "23503" or diag is None:
        return None
    if not str(getattr(diag, "message_primary", "")).startswith("insert or update on table"):
        return None  # a delete of a row others refer to: not about this request's fields
    table = db.metadata.tables.get(str(getattr(diag, "table_name", "")))
    constraint = getattr(diag, "constraint_name", None)
    if table is None:
        return None
    for foreign_key in table.foreign_key_constraints:
        if foreign_key.name == constraint and len(foreign_key.column_keys) == 1:
            return foreign_key.column_keys[0]
    return None


def _handle_data_error(error: DataError) -> Response:
    # A value the schemas let through but the database refuses (out of range, not
    # representable): the client's input, so a 422 — and a gap in validation, so logged.
    db.session.rollback()
    log.warning("database refused a value: %s", error.orig)
    return error_response(422, "VALIDATION_ERROR", "A value in the request is out of range or not allowed")


# PostgreSQL gave up on this transaction to let a concurrent one finish (a deadlock, a
# serialization failure): nothing was written, and the same request again will succeed.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


_STATEMENT_TIMEOUT_SQLSTATE = "57014"  # query_canceled: statement_timeout
_DATABASE_RETRY_SECONDS = 5


def _handle_database_unavailable(error: DBAPIError) -> Response:
    db.session.rollback()
    if getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        log.warning("transaction rolled back for a concurrent one: %s", error.orig)
        return error_response(
            409, "CONFLICT", "The request collided with another one at the same moment; send it again"
        )
    if getattr(error.orig, "sqlstate", None) == _STATEMENT_TIMEOUT_SQLSTATE:
        # DATABASE_STATEMENT_TIMEOUT: held up (a lock a migration or a long transaction
        # holds); the request's thread is free again, and the client may send it again.
        log.warning("statement timed out: %s", error.orig)
        return error_response(
            503,
            "SERVICE_UNAVAILABLE",
            "The database took too long to answer; send it again shortly",
            headers={"Retry-After": str(_DATABASE_RETRY_SECONDS)},
        )
    log.error("database unavailable: %s", error, exc_info=error)
    return error_response(
        503,
        "SERVICE_UNAVAILABLE",
        "The database is temporarily unavailable",
        headers={"Retry-After": str(_DATABASE_RETRY_SECONDS)},
    )


def _handle_redis_unavailable(error: RedisError) -> Response:
    log.error("redis unavailable: %s", error, exc_info=error)
    return error_response(503, "SERVICE_UNAVAILABLE", "A required service is temporarily unavailable")


def unexpected_error(error: Exception) -> Response:
    """The answer to an exception no handler of its own took: logged, a 500 envelope."""
    if isinstance(error, HTTPException):
        return _handle_http_exception(error)
    log.exception("unhandled exception", exc_info=error)
    return error_response(500, "INTERNAL_ERROR", "Internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, _handle_domain_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(IntegrityError, _handle_integrity_error)
    app.register_error_handler(DataError, _handle_data_error)
    app.register_error_handler(OperationalError, _handle_database_unavailable)
    app.register_error_handler(RedisError, _handle_redis_unavailable)
    app.register_error_handler(Exception, unexpected_error)
