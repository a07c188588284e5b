"""Who may do what in the catalog."""

from __future__ import annotations

from app.permissions import Principal, has_permission, require_permission

WRITE = "products:write"

can_write = require_permission(WRITE)


def sees_inactive(viewer: Principal | None) -> bool:
    """Staff (``products:write``) see inactive products and may filter on ``is_active``;
    everyone else sees active ones only, and an inactive product is a 404 for them."""
    return has_permission(viewer, WRITE)


IMPORT = "products:import"

can_import = require_permission(IMPORT)
