"""Rate limits: the limiter, whom a request counts against, the named limits, and what
happens when the counters' storage (Redis) cannot be reached.

Every endpoint has ``RATELIMIT_DEFAULT`` per client and endpoint; named limits are
stricter. A client is the user of a valid access token, else the IP address. Key
functions never raise: a request that breaks one is counted against its IP.

With the storage down the limits cannot be enforced anywhere, and counting in each
process instead would multiply them by the number of processes. So: endpoints marked
``fails_closed`` (credentials: login, register, reset…) answer 503; every other endpoint
serves without a limit. Each such request is counted in ``ratelimit_storage_errors_total``
and the outage is logged (at most every 30 s per process).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from copy import deepcopy
from functools import wraps
from typing import Any, TypeVar, cast

import flask_limiter
from flask import current_app, g, request
from flask_jwt_extended import decode_token
from flask_limiter import RequestLimit
from limits.errors import StorageError

from app.errors import ServiceUnavailable
from app.security import client_ip

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

_FAILS_CLOSED = "_ratelimit_fails_closed"
_COUNTED = "ratelimit_storage_error_counted"
_LOG_EVERY_SECONDS = 30.0
_RETRY_SECONDS = 5
_last_logged = 0.0


def ip_key() -> str:
    """The client's address, as its limits count it: an IPv6 client by its /64 (the network
    one subscriber gets, where a host may take any address it likes), an IPv4 one by its
    address. ``client_ip`` is the address sessions show too: a port taken off, an
    IPv4-mapped IPv6 address as its IPv4 address."""
    address = client_ip()
    if address is None:
        return "ip:unknown"
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return f"ip:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"ip:{address}"


def safe_key(key_func: Callable[[], str]) -> Callable[[], str]:
    """A key function that cannot fail a request: on any error the request counts against
    its IP (flask-limiter would otherwise swap in fresh per-process counters)."""

    @wraps(key_func)
    def key() -> str:
        try:
            return key_func()
        except Exception as error:  # a key function must never raise, whatever the request holds
            # One line, no traceback: a client can send this as often as its limit allows.
            log.info("rate-limit key %s failed (%s); counting by IP", key_func.__name__, type(error).__name__)
            return ip_key()

    return key


@safe_key
def client_key() -> str:
    """The user of a valid access token (from any address), else the client IP."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            claims = decode_token(token.strip())
        except Exception:  # any undecodable token: counted by IP, refused later by the view
            return ip_key()
        if claims.get("type") == "access" and claims.get("sub"):
            return "user:" + str(claims["sub"])
    return ip_key()


def default_limit() -> str:
    return str(current_app.config["RATELIMIT_DEFAULT"])


def fails_closed(view: F) -> F:
    """Answer 503 rather than serve this view unlimited when the rate-limit storage is down."""
    setattr(view, _FAILS_CLOSED, True)
    doc = deepcopy(getattr(view, "_apidoc", {}))
    doc.setdefault("manual_doc", {}).setdefault("responses", {}).setdefault(503, "SERVICE_UNAVAILABLE")
    view._apidoc = doc  # type: ignore[attr-defined]  # flask-smorest's doc carrier
    return view


def _endpoint_fails_closed() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, _FAILS_CLOSED, False))


def _storage_unavailable(error: StorageError | None, *, during_check: bool) -> None:
    """This request's limits cannot be checked: count it (once), log (now and then), and
    refuse it if its endpoint fails closed."""
    global _last_logged
    refuse = during_check and _endpoint_fails_closed()
    if not g.get(_COUNTED):
        g.setdefault(_COUNTED, True)
        from app.observability import METRICS_KEY  # not at the top: observability imports the extensions

        outcome = "refused" if refuse else "served_unlimited"
        current_app.extensions[METRICS_KEY].ratelimit_storage_errors.labels(outcome).inc()
    now = time.monotonic()
    if error is not None and now - _last_logged >= _LOG_EVERY_SECONDS:
        _last_logged = now
        log.warning(
            "rate-limit storage unreachable (%s: %s): credential endpoints answer 503, the rest serve unlimited",
            type(error.storage_error).__name__,
            error.storage_error,
        )
    if refuse:
        raise ServiceUnavailable(
            "Sign-in is temporarily unavailable; try again shortly", headers={"Retry-After": str(_RETRY_SECONDS)}
        )


class Limiter(flask_limiter.Limiter):
    """flask-limiter with the storage-outage policy above (storage errors arrive wrapped in
    ``StorageError``: ``RATELIMIT_STORAGE_OPTIONS`` sets ``wrap_exceptions``).

    After a failure the storage is left alone for ``_RETRY_SECONDS`` (per process): requests
    meanwhile do not each wait for a connection that will not come.
    """

    _down_until = 0.0

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if time.monotonic() < self._down_until:
            self._unchecked(None)
            return
        try:
            super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)
        except StorageError as error:
            self._down_until = time.monotonic() + _RETRY_SECONDS
            self._unchecked(error)

    def _unchecked(self, error: StorageError | None) -> None:
        # Nothing was counted: no X-RateLimit-* headers (reading them needs the storage).
        self.context.view_rate_limit = None
        self.context.view_rate_limits = []
        _storage_unavailable(error, during_check=True)

    @property
    def current_limit(self) -> RequestLimit | None:
        """The limit the ``X-RateLimit-*`` headers tell of: the one breached, else the one
        nearest to refusing (flask-limiter's own pick, the shortest window, may have plenty
        left while another is spent, and a client that follows the headers would still be
        refused)."""
        limit = super().current_limit
        if limit is None:
            return None
        try:
            applied = self.context.view_rate_limits
            if not limit.breached and len(applied) > 1:
                limit = min(applied, key=lambda applied_limit: (applied_limit.remaining, -applied_limit.reset_at))
            limit.window  # noqa: B018  (read now, cached: the headers need it)
        except StorageError as error:
            self._down_until = time.monotonic() + _RETRY_SECONDS
            _storage_unavailable(error, during_check=False)
            return None
        return limit


def per_client(config_key: str, *, scope: str, shared: bool = False) -> Callable[[F], F]:
    """A named limit: ``config[config_key]`` (flask-limiter syntax) per client, on top of the
    default one (every /api/v1 operation documents its 429: app.openapi). ``shared``: one
    budget for every view that carries it, instead of one per view."""
    from app.extensions import limiter

    def value() -> str:
        return str(current_app.config[config_key])

    if shared:
        limit = limiter.shared_limit(value, scope=scope, key_func=client_key, override_defaults=False)
        return cast(Callable[[F], F], limit)
    return cast(Callable[[F], F], limiter.limit(value, key_func=client_key, scope=scope, override_defaults=False))


def order_placement_limit() -> Callable[[F], F]:
    """``RATELIMIT_ORDERS`` per customer, on POST /orders."""
    return per_client("RATELIMIT_ORDERS", scope="orders-place")


def uploads_limit() -> Callable[[F], F]:
    """``RATELIMIT_UPLOADS`` per client, one budget for every view that takes an upload (API or
    direct).

    Usage, below the permission check: ``@uploads_limit()``; add ``@allows_large_body``
    (app.security) where the request body is the file itself.
    """
    return per_client("RATELIMIT_UPLOADS", scope="uploads", shared=True)
