"""The RQ dashboard at /admin/rq, for accounts with the ``jobs:dashboard`` permission.

A browser cannot attach a bearer token to page loads, so the dashboard also accepts HTTP
Basic credentials (email and password of such an account); API clients may send their
access token. Without ``REDIS_URL`` (jobs run in-process) there is no queue to show.
"""

from __future__ import annotations

import rq_dashboard
from flask import Flask, Response, request
from flask_jwt_extended import verify_jwt_in_request

from app.errors import error_response
from app.permissions import current_principal, has_permission
from app.users import service as users_service
from app.users.passwords import verify_password

URL_PREFIX = "/admin/rq"
PERMISSION = "jobs:dashboard"


def _challenge() -> Response:
    response = error_response(401, "UNAUTHORIZED", "Sign in with an admin account to see the job dashboard")
    response.headers["WWW-Authenticate"] = 'Basic realm="Storefront jobs", charset="UTF-8"'
    return response


def _guard() -> Response | None:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        user = users_service.find_by_email(auth.username or "")
        ok = verify_password(user.password_hash if user else None, auth.password or "")
        if user is None or not ok or not user.can_authenticate:
            return _challenge()
        allowed = has_permission(user, PERMISSION)
    elif request.headers.get("Authorization", "").startswith("Bearer "):
        verify_jwt_in_request()
        allowed = has_permission(current_principal(), PERMISSION)
    else:
        return _challenge()
    if not allowed:
        return error_response(403, "FORBIDDEN", f"This page requires the '{PERMISSION}' permission")
    return None


def _unavailable() -> Response:
    return error_response(503, "SERVICE_UNAVAILABLE", "The job dashboard needs REDIS_URL: jobs run in-process here")


def init_dashboard(app: Flask) -> None:
    redis_url = app.config.get("REDIS_URL")
    if not redis_url:
        app.add_url_rule(URL_PREFIX, "rq_dashboard_unavailable", _unavailable)
        return
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    rq_dashboard.web.setup_rq_connection(app)
    rq_dashboard.blueprint.before_request(_guard)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
