"""Who may call the auth endpoints, and how often.

The endpoints that take credentials have their own, stricter limits (per IP, each
endpoint its own budget, and per submitted email and IP: one budget for all of them)
instead of the default one, and fail closed: with the
rate-limit storage down they answer 503 rather than let guesses through unlimited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, request
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError

from app.extensions import limiter
from app.permissions import require_auth, require_refresh_token
from app.ratelimits import fails_closed, ip_key, safe_key

F = TypeVar("F", bound=Callable[..., Any])

authenticated = require_auth()
refresh_token = require_refresh_token()


def _ip_limit() -> str:
    return str(current_app.config["RATELIMIT_AUTH_IP"])


def _email_limit() -> str:
    return str(current_app.config["RATELIMIT_AUTH_EMAIL"])


_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _submitted_email() -> object:
    """The email a form (either encoding the pages read) or a JSON body sends."""
    if request.mimetype in _FORMS:
        return request.form.get("email")
    body = request.get_json(silent=True)  # may raise on a pathological body: safe_key catches it
    return body.get("email") if isinstance(body, dict) else None


def address_key(email: str) -> str:
    """An email address as limit keys hold it: normalised, then hashed (Redis and the
    limiter's log lines never show the address)."""
    normalised = email[:512].strip().lower()[:254]
    return "email:" + hashlib.sha256(normalised.encode()).hexdigest()[:32]


@safe_key
def _email_key() -> str:
    """The submitted email with the client's address: one client gets no more tries at an
    address by spreading them over the endpoints, and a client that spends its budget on
    someone else's address spends nobody else's (that owner still signs in and asks for a
    reset link from anywhere). Many clients at one account: the lockout, and the cap on
    the mails an address gets (``recovery``)."""
    email = _submitted_email()
    if isinstance(email, str) and email.strip():
        return address_key(email) + "/" + ip_key()
    return ip_key()


@safe_key
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
    return ip_key()


def _strict(limit: Callable[[F], F]) -> Callable[[F], F]:
    """A credential endpoint's limit, failing closed (its 429 is documented with every
    operation's, by app.openapi)."""

    def decorator(view: F) -> F:
        return fails_closed(limit(view))

    return decorator


def email_limit(*, methods: list[str] | None = None) -> Callable[[F], F]:
    """``RATELIMIT_AUTH_EMAIL`` per submitted email and client, one budget for every
    endpoint that takes one (API and pages: sign-ins, registration, reset requests): no
    client gets more password guesses, or more mail, at an address by sending it to
    several of them."""
    limit = limiter.shared_limit(_email_limit, scope="auth-email", key_func=_email_key, methods=methods)
    return cast(Callable[[F], F], limit)


per_ip = _strict(limiter.limit(_ip_limit, key_func=ip_key, scope="auth-ip"))
# The pages mail links open: only sending the form counts (showing it costs nothing and
# spends no token; a mail scanner that opens links must not use up the reader's budget).
per_form_ip = _strict(limiter.limit(_ip_limit, key_func=ip_key, scope="auth-ip", methods=["POST"]))
per_email = _strict(email_limit())
# Refresh has no email in its body: the account behind the token is limited instead.
per_account = _strict(limiter.limit(_email_limit, key_func=_account_key, scope="auth-account"))
