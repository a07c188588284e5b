"""Roles, permissions and the decorator that guards a view.

The role → permission table lives here once; domains expose named decorators built from
``require_permission`` in their own ``permissions.py``. The authenticated principal is
whatever the auth domain's JWT user loader returns (the ``User``), read through the
``Principal`` protocol so that this core module imports no domain.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from copy import deepcopy
from datetime import datetime
from functools import wraps
from typing import Any, Protocol, TypeVar, cast

from flask_jwt_extended import current_user, verify_jwt_in_request

from app.errors import PermissionDenied

F = TypeVar("F", bound=Callable[..., Any])


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    ADMIN = "admin"


CUSTOMER_PERMISSIONS = frozenset({"profile:self", "products:read", "orders:create", "orders:read", "orders:cancel"})
STAFF_PERMISSIONS = CUSTOMER_PERMISSIONS | {
    "products:write",
    "products:import",
    "uploads:write",
    "orders:read_all",
    "orders:fulfil",
}
ADMIN_PERMISSIONS = STAFF_PERMISSIONS | {"users:manage", "jobs:dashboard"}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.CUSTOMER: CUSTOMER_PERMISSIONS,
    Role.STAFF: frozenset(STAFF_PERMISSIONS),
    Role.ADMIN: frozenset(ADMIN_PERMISSIONS),
}
ALL_PERMISSIONS = frozenset(ADMIN_PERMISSIONS)


class Principal(Protocol):
    id: uuid.UUID
    role: str
    email_verified_at: datetime | None


def has_permission(principal: Principal | None, permission: str) -> bool:
    if principal is None:
        return False
    try:
        role = Role(principal.role)
    except ValueError:
        return False
    return permission in ROLE_PERMISSIONS[role]


def current_principal() -> Principal:
    """The authenticated caller (call only behind ``require_auth``/``require_permission``)."""
    return cast(Principal, current_user)


def optional_principal() -> Principal | None:
    """The caller if a valid access token was sent, else None (anonymous reads)."""
    verify_jwt_in_request(optional=True)
    user = current_user
    return cast(Principal, user) if user else None


def _guard(permission: str | None, *, refresh: bool = False) -> Callable[[F], F]:
    if permission is not None and permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorator(view: F) -> F:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request(refresh=refresh)
            if permission is not None and not has_permission(current_principal(), permission):
                raise PermissionDenied(f"This action requires the '{permission}' permission")
            return view(*args, **kwargs)

        # Document the requirement in OpenAPI (flask-smorest reads ``_apidoc``).
        doc = deepcopy(getattr(view, "_apidoc", {}))
        checked._apidoc = doc  # type: ignore[attr-defined]  # flask-smorest's doc carrier
        doc.setdefault("manual_doc", {}).setdefault("security", [{"bearerAuth": []}])
        responses = doc["manual_doc"].setdefault("responses", {})
        responses.setdefault(401, "UNAUTHORIZED")  # flask-smorest's named component responses
        if permission is not None:
            responses.setdefault(403, "FORBIDDEN")
        return cast(F, checked)

    return decorator


def require_auth() -> Callable[[F], F]:
    """Any authenticated caller (a valid, unrevoked access token of an active user)."""
    return _guard(None)


def require_refresh_token() -> Callable[[F], F]:
    """A valid, unspent refresh token (as the Bearer token) of an active user."""
    return _guard(None, refresh=True)


def require_permission(permission: str) -> Callable[[F], F]:
    """An authenticated caller whose role grants ``permission`` (403 otherwise)."""
    return _guard(permission)
