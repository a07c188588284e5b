"""Who may do what in the users domain."""

from __future__ import annotations

from app.permissions import require_auth, require_permission

authenticated = require_auth()
MANAGE_USERS = "users:manage"
can_manage_users = require_permission(MANAGE_USERS)
