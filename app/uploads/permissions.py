"""Who may upload, see and read uploads, and how often uploads may be sent."""

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
from app.permissions import Principal, has_permission, require_auth, require_permission
from app.uploads.models import Upload

F = TypeVar("F", bound=Callable[..., Any])

WRITE = "uploads:write"

can_upload = require_permission(WRITE)
authenticated = require_auth()


def sees_all(viewer: Principal | None) -> bool:
    """Staff (``uploads:write``) see every upload; everyone else only their own."""
    return has_permission(viewer, WRITE)


def can_see(viewer: Principal | None, upload: Upload) -> bool:
    return viewer is not None and (upload.owner_id == viewer.id or sees_all(viewer))


def can_read_content(viewer: Principal | None, upload: Upload) -> bool:
    """Product images are public once ready; anything else is its owner's and staff's."""
    return upload.is_public or can_see(viewer, upload)


def _upload_limit() -> str:
    return str(current_app.config["RATELIMIT_UPLOADS"])


def _client_key() -> str:
    """The user of a verified access token, else the client's address.

    Limits run before the view authenticates, so the token is verified here; one that does
    not verify (expired, forged) counts against the address instead.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
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


# One budget per client shared by every endpoint that receives a file (RATELIMIT_UPLOADS).
# Issue 10 brings a general per-client limit; this one is reconciled with it at merge.
rate_limited = _documented(limiter.shared_limit(_upload_limit, scope="uploads", key_func=_client_key))
