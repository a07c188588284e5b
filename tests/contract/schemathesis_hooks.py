"""What the OpenAPI document states in words but JSON Schema cannot, told to schemathesis.

Loaded by ``test_schemathesis.py`` (``SCHEMATHESIS_HOOKS``). Every other failure of every
check fails the run; the only failures accepted are schema-valid requests (ST202) that
the API refuses for one of the reasons below, recognised by the exact answer: the
status, the error code and the fields its ``details`` name.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

# Why a schema-valid value can still be refused, per field (``items.*.product_id`` for
# any line). Each is stated in the operation's or the parameter's description.
CURSOR = "page and cursor styles are exclusive, and a cursor is opaque: only one the server made is valid"
STAFF_ONLY = "a filter only staff may use (the answer depends on the caller's role, not the request's shape)"
EXISTING = "must name a row that exists (business state, not shape)"
ISSUED_TOKEN = "must be a token the API emailed (business state)"
STRENGTH = "password strength is estimated (zxcvbn, character classes), not a pattern"
CROSS_FIELD = "must not be below price: a rule across two fields"
CURRENT_PASSWORD = "must be the account's current password"
PRICE_RANGE = "max_price must not be below min_price: a rule across two parameters"
NO_WEB_ADDRESS = "a name must not hold a web address (://, www.): stated in words, not in the pattern"

RULES: dict[str, dict[str, str]] = {
    "list_products": {
        "cursor": CURSOR,
        "is_active": STAFF_ONLY,
        "updated_after": STAFF_ONLY,
        "sort": "sorting by updated_at is for staff only (the answer depends on the caller's role)",
        "max_price": PRICE_RANGE,
    },
    "list_orders": {"cursor": CURSOR, "user_id": STAFF_ONLY},
    "list_widgets": {"cursor": CURSOR},
    "list_uploads": {"cursor": CURSOR},
    "list_product_imports": {"cursor": CURSOR},
    "start_product_import": {"upload_id": "must name a ready upload of purpose import (business state)"},
    "start_product_export": {"max_price": PRICE_RANGE},
    "register": {"password": STRENGTH, "full_name": NO_WEB_ADDRESS},
    "reset_password": {"token": ISSUED_TOKEN, "password": STRENGTH},
    "verify_email": {"token": ISSUED_TOKEN},
    "update_me": {"current_password": CURRENT_PASSWORD, "password": STRENGTH, "full_name": NO_WEB_ADDRESS},
    "update_user": {"full_name": NO_WEB_ADDRESS},
    "create_product": {"category_ids": EXISTING, "image_upload_id": EXISTING, "compare_at_price": CROSS_FIELD},
    "replace_product": {"category_ids": EXISTING, "image_upload_id": EXISTING, "compare_at_price": CROSS_FIELD},
    "update_product": {"category_ids": EXISTING, "image_upload_id": EXISTING, "compare_at_price": CROSS_FIELD},
    "place_order": {"items.*.product_id": EXISTING},
    # An empty file, or one that does not parse as its purpose needs (CSV/JSON): content.
    "create_upload": {"file": "the file's content must suit its purpose (not empty; an import parses)"},
    "complete_upload": {"file": "the file's content must suit its purpose (not empty; an import parses)"},
}
# Answers that depend on state or content, not on the request's shape, whatever the fields:
# a stale or made-up If-Match (the ETag is business state); an account locked by earlier
# wrong passwords (the fuzzer itself sends those, at login and as current_password); a file
# whose sniffed content its purpose does not allow, or whose size is over its purpose's limit
# (a rule across two fields: purpose and file or size).
STALE_ETAG = (412, "PRECONDITION_FAILED")
LOCKED = (423, "ACCOUNT_LOCKED")
CONTENT = {(415, "UNSUPPORTED_MEDIA_TYPE"), (413, "PAYLOAD_TOO_LARGE")}
STATEFUL_ANSWERS: dict[str, set[tuple[int, str]]] = {
    "replace_product": {STALE_ETAG},
    "update_product": {STALE_ETAG},
    "delete_product": {STALE_ETAG},
    "get_upload_content": {STALE_ETAG},
    "login": {LOCKED},
    "update_me": {LOCKED},
    "create_upload": CONTENT,
    "create_direct_upload": CONTENT,
    "complete_upload": CONTENT,
    "upload_to_target": CONTENT,
}


def _field(name: str | None) -> str:
    return re.sub(r"\.\d+(?=\.|$)", ".*", name or "")


def _explained(operation_id: str, response: Any) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    if (response.status_code, error.get("code")) in STATEFUL_ANSWERS.get(operation_id, set()):
        return True
    rules = RULES.get(operation_id, {})
    fields = {_field(detail.get("field")) for detail in error.get("details") or []}
    return response.status_code == 422 and bool(fields) and fields <= set(rules)


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure except a positive-data rejection that one of the rules explains."""
    if getattr(failure, "code", None) != "ST202":
        return True
    operation_id = (case.operation.definition.raw or {}).get("operationId", "")
    return not _explained(operation_id, response)
