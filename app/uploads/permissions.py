"""Who may upload, see and read uploads, and how often uploads may be sent."""

from __future__ import annotations

from app.permissions import Principal, has_permission, require_auth, require_permission
from app.ratelimits import uploads_limit
from app.uploads.models import Upload

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


# One budget per client (RATELIMIT_UPLOADS) shared by every endpoint that receives a file.
rate_limited = uploads_limit()
