"""Absolute URLs: the only way to one, never built from a request's (client-chosen) Host."""

from __future__ import annotations

from urllib.parse import quote

from flask import current_app, has_request_context, request

_WILDCARD_HOSTS = {"0.0.0.0", "::", ""}  # noqa: S104 (compared against, not bound)


def public_base_url() -> str:
    """``PUBLIC_BASE_URL``, or, where it may be unset (not in production), the address this
    server actually serves: the host and port it is bound to, never a request header (the
    Host header is the client's to choose). Outside a request: ``PORT`` on loopback."""
    configured: str | None = current_app.config["PUBLIC_BASE_URL"]
    if configured:
        return configured
    if not has_request_context():
        return f"http://127.0.0.1:{current_app.config['PORT']}"
    environ = request.environ
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = str(environ.get("SERVER_NAME", ""))
    host = "127.0.0.1" if host in _WILDCARD_HOSTS else host
    if ":" in host:
        host = f"[{host}]"
    port = str(environ.get("SERVER_PORT", ""))
    default_port = {"http": "80", "https": "443"}.get(scheme)
    return f"{scheme}://{host}" if port in {"", default_port} else f"{scheme}://{host}:{port}"


def account_pages_url() -> str:
    """Where mail links to the account pages point: ``FRONTEND_URL`` when a web app serves
    them, else this API (which serves ``/account/…`` itself)."""
    frontend: str | None = current_app.config["FRONTEND_URL"]
    return frontend or public_base_url()


def public_url(path: str) -> str:
    """``public_base_url()`` + ``path`` (percent-encoded)."""
    return public_base_url() + quote(path, safe="/:@!$&'()*+,;=-._~%")
