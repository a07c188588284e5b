"""Who may call the auth endpoints, and how often.

The endpoints that take credentials have their own, stricter limits (per IP, each
endpoint its own budget, and per submitted email and IP: one budget for all of them)
instead of the default one, and fail closed: with the
rate-limit storage down they answer 503 rather than let guesses through unlimited.
Refresh counts a refresh token that verifies against its account only (the users behind
one carrier-NAT address would share one per-IP budget), and anything else per IP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError

from app.extensions import limiter
from app.permissions import require_auth, require_refresh_token
from app.ratelimits import fails_closed, ip_key, safe_key
from app.security import email_digest

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
    """An email address as limit keys hold it (``email_digest``: Redis and the limiter's
    log lines never show it)."""
    return "email:" + email_digest(email)


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


_BEARER_CLAIMS = "auth_bearer_claims"


def _bearer_claims() -> dict[str, Any] | None:
    """The claims of the request's Bearer token if it verifies (signature, expiry, issuer,
    audience), else None. Limits run before the view verifies it, so it is decoded here,
    once for the limits of a request (kept with the token: ``g`` may outlive a request)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not token:
        return None
    cached: tuple[str, dict[str, Any] | None] | None = g.get(_BEARER_CLAIMS)
    if cached is not None and cached[0] == token:
        return cached[1]
    claims: dict[str, Any] | None
    try:
        claims = decode_token(token)
    except (PyJWTError, JWTExtendedException):
        claims = None
    setattr(g, _BEARER_CLAIMS, (token, claims))
    return claims


@safe_key
def _account_key() -> str:
    """The account of the Bearer token; a token that does not verify (or names no account)
    is counted against the IP instead."""
    claims = _bearer_claims()
    if claims is not None and claims.get("sub"):
        return "user:" + str(claims["sub"])
    return ip_key()


def _refresh_token_verifies() -> bool:
    """A refresh token that verifies, of an account: its refresh counts per account
    (``per_account``) and not per IP, so the users behind one address (a carrier's NAT)
    do not share one budget. Junk is not exempt: it counts per IP. Never raises (an
    exemption that failed would fail the request): in doubt, the IP counts."""
    try:
        claims = _bearer_claims()
        return claims is not None and claims.get("type") == "refresh" and bool(claims.get("sub"))
    except Exception:  # whatever the request holds, a limit check must not fail it
        return False


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
# Refresh: per IP only for a token that does not verify as a refresh token (with
# per_account, which counts a verified one against its account).
per_ip_unless_refresh_token = _strict(
    limiter.limit(_ip_limit, key_func=ip_key, scope="auth-ip", exempt_when=_refresh_token_verifies)
)
# The pages mail links open: only sending the form counts (showing it costs nothing and
# spends no token; a mail scanner that opens links must not use up the reader's budget).
per_form_ip = _strict(limiter.limit(_ip_limit, key_func=ip_key, scope="auth-ip", methods=["POST"]))
per_email = _strict(email_limit())
# Refresh has no email in its body: the account behind the token is limited instead.
per_account = _strict(limiter.limit(_email_limit, key_func=_account_key, scope="auth-account"))
