"""Who may call the auth endpoints, and how often."""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from typing import Any, TypeVar

from flask import current_app, request
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_limiter.util import get_remote_address
from jwt import PyJWTError

from app.extensions import limiter
from app.permissions import require_auth, require_refresh_token

F = TypeVar("F", bound=Callable[..., Any])

authenticated = require_auth()
refresh_token = require_refresh_token()


def _ip_limit() -> str:
    return str(current_app.config["RATELIMIT_AUTH_IP"])


def _email_limit() -> str:
    return str(current_app.config["RATELIMIT_AUTH_EMAIL"])


def _email_key() -> str:
    """The submitted email (normalised), so one account cannot be hammered from many IPs."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        return "email:" + email.strip().lower()[:254]
    return "ip:" + get_remote_address()


def _account_key() -> str:
    """The account of the Bearer token (limits run before the view verifies it, so it is
    decoded here; a token that does not verify is counted against the IP instead)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            return "user:" + str(decode_token(token.strip())["sub"])
        except (PyJWTError, JWTExtendedException, KeyError):
            pass
    return "ip:" + get_remote_address()


def _documented(limit: Callable[[F], F]) -> Callable[[F], F]:
    """A rate limit that also declares its 429 in the OpenAPI document."""

    def decorator(view: F) -> F:
        limited = limit(view)
        doc = deepcopy(getattr(view, "_apidoc", {}))
        doc.setdefault("manual_doc", {}).setdefault("responses", {}).setdefault(429, "TOO_MANY_REQUESTS")
        limited._apidoc = doc  # type: ignore[attr-defined]  # flask-smorest's doc carrier
        return limited

    return decorator


per_ip = _documented(limiter.limit(_ip_limit, scope="auth-ip"))
per_email = _documented(limiter.limit(_email_limit, key_func=_email_key, scope="auth-email"))
# Refresh has no email in its body: the account behind the token is limited instead.
per_account = _documented(limiter.limit(_email_limit, key_func=_account_key, scope="auth-account"))
