"""Security headers, body size, the client's address and absolute URLs, for every response.

One ``after_request`` sets the headers of API.md with ``setdefault``: a view that needs
another ``Content-Security-Policy`` (the docs page, the dashboard, upload content) sets
its own and keeps it. Absolute URLs are built from ``PUBLIC_BASE_URL`` only, never from
the request's ``Host`` or ``X-Forwarded-Host``, which any client can choose.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, current_app, g, request

from app.errors import PayloadTooLarge
from app.urls import public_base_url

F = TypeVar("F", bound=Callable[..., Any])

JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
# Blueprints whose answers carry tokens or personal data (besides any request that sends
# credentials): never stored by a browser or a shared cache.
PRIVATE_BLUEPRINTS = frozenset({"auth", "users", "orders", "admin", "rq_dashboard"})
_LARGE_BODY = "_storefront_large_body"


def allows_large_body(view: F) -> F:
    """Exempt a view (an upload) from ``MAX_JSON_BYTES``; ``MAX_CONTENT_LENGTH`` still holds."""
    setattr(view, _LARGE_BODY, True)
    return view


def client_ip() -> str | None:
    """The client's address as the configured proxies report it, if it is an IP address.

    With ``PROXY_FIX_X_FOR`` > 0 it comes from ``X-Forwarded-For``; whatever a client put
    there that is not an address is treated as unknown, never stored or echoed.
    """
    raw = request.remote_addr
    if not raw or len(raw) > 45:
        return None
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def csp_nonce() -> str:
    """A per-response nonce for the inline scripts of server-rendered pages."""
    nonce: str | None = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return nonce


def _view_allows_large_body() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return False
    view_class = getattr(view, "view_class", None)
    method = getattr(view_class, request.method.lower(), None) if view_class is not None else None
    return bool(getattr(view, _LARGE_BODY, False) or getattr(method, _LARGE_BODY, False))


def _cap_body() -> None:
    if _view_allows_large_body():
        return
    limit = int(current_app.config["MAX_JSON_BYTES"])
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
    # A body without Content-Length (chunked) is cut at the limit; the parser refuses it.
    request.max_content_length = limit


def sends_credentials() -> bool:
    """Whether the request carries credentials: an ``Authorization`` header or the
    dashboard's session cookie (what it is answered may depend on who sent it)."""
    return "Authorization" in request.headers or current_app.config["SESSION_COOKIE_NAME"] in request.cookies


def _is_private() -> bool:
    return request.blueprint in PRIVATE_BLUEPRINTS or sends_credentials()


def _rebase_location(response: Response) -> None:
    """A redirect Werkzeug built from the request's Host points at PUBLIC_BASE_URL instead."""
    location = response.headers.get("Location")
    if not location:
        return
    parts = urlsplit(location)
    if parts.netloc and parts.netloc == request.host:
        base = urlsplit(public_base_url())
        response.headers["Location"] = urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))


_DEFAULT_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", JSON_CSP),
)


def _hsts(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    hsts = int(config["HSTS_SECONDS"])
    return [("Strict-Transport-Security", f"max-age={hsts}; includeSubDomains")] if hsts else []


def security_headers_for_errors(app: Flask) -> list[tuple[str, str]]:
    """The headers of every API answer, for answers written outside a request of the app
    (``app.server_errors``)."""
    return [*_DEFAULT_HEADERS, *_hsts(app.config)]


def _security_headers(response: Response) -> Response:
    headers = response.headers
    # One pass over what the view set (each header it set is kept), not one per default.
    present = {name.lower() for name, _ in headers.items()}
    wanted = [*_DEFAULT_HEADERS, *_hsts(current_app.config)]
    if _is_private():
        wanted.append(("Cache-Control", "no-store"))
    headers.extend([(name, value) for name, value in wanted if name.lower() not in present])
    if "location" in present:
        _rebase_location(response)
    return response


def init_security(app: Flask) -> None:
    app.before_request(_cap_body)
    app.after_request(_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
