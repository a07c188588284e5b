"""Security headers, body size, the client's address and absolute URLs, for every response.

One ``after_request`` sets the headers of API.md with ``setdefault``: a view that needs
another ``Content-Security-Policy`` (the docs page, the dashboard, upload content) sets
its own and keeps it. Absolute URLs are built from ``PUBLIC_BASE_URL`` only, never from
the request's ``Host`` or ``X-Forwarded-Host``, which any client can choose.
"""

from __future__ import annotations

import hashlib
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


# "[2001:db8::1]:65535": the longest address text a proxy may hand over, port included.
_MAX_ADDRESS_TEXT = 53


def client_ip() -> str | None:
    """The client's address as the configured proxies report it, if it is an IP address.

    With ``PROXY_FIX_X_FOR`` > 0 it comes from ``X-Forwarded-For``; whatever a client put
    there that is not an address is treated as unknown, never stored or echoed. Some
    proxies add the client's port (``1.2.3.4:5555``, ``[2001:db8::1]:443``): the address is
    taken. An IPv4 client reached over IPv6 (``::ffff:1.2.3.4``) is its IPv4 address; an
    IPv6 zone (``%eth0``: the proxy's interface, or any text) is dropped. Rate limits
    (``app.ratelimits.ip_key``) and sessions both use this.
    """
    return address_text(request.remote_addr)


def address_text(raw: str | None) -> str | None:
    """``raw`` (an address, maybe with a port) as a canonical IP address, or None."""
    if not raw or len(raw) > _MAX_ADDRESS_TEXT:
        return None
    text, want_v6 = raw, False
    if raw.startswith("["):  # [v6] or [v6]:port
        text, closed, port = raw[1:].partition("]")
        if not closed or (port and not _is_port(port)):
            return None
        want_v6 = True
    elif raw.count(":") == 1:  # v4:port
        text, port = raw.split(":")
        if not _is_port(":" + port):
            return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Address(int(ip)))  # without a zone
    return None if want_v6 else str(ip)


def _is_port(text: str) -> bool:
    """Whether ``text`` is ``:`` and a port number (ASCII digits, at most 65535)."""
    digits = text.removeprefix(":")
    return (
        text.startswith(":") and 0 < len(digits) <= 5 and digits.isascii() and digits.isdigit() and int(digits) <= 65535
    )


def header_text(value: str | None) -> str | None:
    """A request header's text as the client wrote it. WSGI hands header bytes over as
    latin-1, so a UTF-8 ``User-Agent`` (``Zoë's iPhone``) arrives as ``ZoÃ«'s iPhone``:
    bytes that are valid UTF-8 are read as UTF-8, anything else is kept as it came."""
    if not value or value.isascii():
        return value or None
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not latin-1 text (already decoded) or not UTF-8 bytes
        return value


def email_digest(email: str) -> str:
    """An email address (normalised: trimmed, lower case) as keys in Redis hold it: keyed
    with ``SECRET_KEY``, so that neither Redis nor a log line of a key shows the address,
    and nobody without the secret can tell which address a key is (a plain hash of a
    guessed address would)."""
    secret = hashlib.blake2b(str(current_app.config["SECRET_KEY"]).encode(), digest_size=32, person=b"emails").digest()
    normalised = email[:512].strip().lower()[:254]
    return hashlib.blake2b(normalised.encode(), key=secret, digest_size=16).hexdigest()


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
