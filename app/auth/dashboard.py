"""The RQ dashboard at /admin/rq, for accounts with the ``jobs:dashboard`` permission.

Browsers sign in at /admin/login (app.auth.admin) and carry its session cookie; API clients
may send an admin's access token instead. Every state-changing request is a POST with the
session's CSRF token (a GET on an action route is refused), and every page sends a CSP
that frames nothing and runs only our scripts. rq-dashboard 0.9.0 (the latest release)
renders a job's description and ``exc_info`` unescaped on its job page: app/templates/
rq_dashboard/job.html overrides that template (and shows a job's last error from its meta), and
base.html adds the CSP nonce.
Without ``REDIS_URL`` (jobs run in-process) there is no queue to show.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import rq_dashboard
from flask import Flask, Request, Response, jsonify, redirect, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_jwt_extended import verify_jwt_in_request
from markupsafe import escape
from rq import Queue
from rq.exceptions import NoSuchJobError
from werkzeug.wrappers import Response as BaseResponse

from app.auth import admin
from app.errors import error_response, unexpected_error
from app.extensions import redis_queues
from app.permissions import current_principal, has_permission
from app.security import csp_nonce

log = logging.getLogger(__name__)

URL_PREFIX = "/admin/rq"
PERMISSION = "jobs:dashboard"
# rq-dashboard's scripts are inline (allowed by nonce) and compile Underscore templates,
# which needs 'unsafe-eval'; injected markup cannot run script: no 'unsafe-inline'.
PAGE_CSP = (
    "default-src 'none'; script-src 'self' 'nonce-{nonce}' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def _is_action() -> bool:
    rule = request.url_rule
    return rule is not None and "POST" in (rule.methods or set())


def _guard() -> Response | BaseResponse | None:
    if request.blueprint != "rq_dashboard":
        return None
    return _refusal() or _nothing_to_compact()


def _refusal() -> Response | BaseResponse | None:
    """Why this request may not use the dashboard, or None."""
    if _is_action() and request.method != "POST":
        return error_response(405, "METHOD_NOT_ALLOWED", "Dashboard actions are POST only", headers={"Allow": "POST"})
    if request.headers.get("Authorization", "").startswith("Bearer "):
        verify_jwt_in_request()  # no cookie involved: nothing for a forged request to ride on
        if not has_permission(current_principal(), PERMISSION):
            return error_response(403, "FORBIDDEN", f"This page requires the '{PERMISSION}' permission")
        return None
    if admin.signed_in_admin() is None:
        if request.method == "GET" and not request.path.endswith(".json"):
            return redirect(f"/admin/login?next={quote(request.full_path.rstrip('?'))}", code=303)
        return error_response(401, "UNAUTHORIZED", "Sign in at /admin/login to use the job dashboard")
    if _is_action() and not admin.csrf_ok():
        return error_response(403, "FORBIDDEN", "CSRF check failed: reload the dashboard and try again")
    return None


def _nothing_to_compact() -> Response | None:
    """Compacting an empty queue: done (RQ's ``Queue.compact`` renames the queue's list,
    which Redis refuses when it does not exist, and the dashboard answered 503)."""
    if request.endpoint != "rq_dashboard.compact_queue" or request.view_args is None:
        return None
    queue = Queue(str(request.view_args["queue_name"]), connection=redis_queues.connection)
    if queue.connection.exists(queue.key):
        return None
    return jsonify(status="OK")  # what the dashboard answers for a compacted queue


def _page_headers(response: Response) -> Response:
    if request.blueprint in {"rq_dashboard", "admin"}:
        response.headers["Content-Security-Policy"] = PAGE_CSP.format(nonce=csp_nonce())
        response.headers["Cache-Control"] = "no-store"
    return response


def _unavailable() -> Response:
    return error_response(503, "SERVICE_UNAVAILABLE", "The job dashboard needs REDIS_URL: jobs run in-process here")


# What rq-dashboard raises for a job Redis no longer holds (a finished job's result expires
# after minutes) and for parameters out of its range (instance 1 of one, page 0, a
# registry it does not know): not found, where it answered 500.
_DASHBOARD_MISSES = (NoSuchJobError, LookupError, ValueError, ArithmeticError, UnboundLocalError)


def _not_found_in_dashboard(error: Exception) -> Response:
    if request.blueprint != "rq_dashboard":
        return unexpected_error(error)  # anywhere else: what any unexpected error gets
    log.info("dashboard: %s for %s answered 404", type(error).__name__, request.path, exc_info=error)
    message = (
        "No such job: Redis no longer holds it (finished jobs are kept for a few minutes)"
        if isinstance(error, NoSuchJobError)
        else "No such page of the dashboard"
    )
    if request.path.endswith(".json"):
        return error_response(404, "NOT_FOUND", message)
    back = f'<p><a href="{URL_PREFIX}/">Back to the dashboard</a></p>'
    page = f"<!doctype html><title>Not found</title><p>{escape(message)}.</p>{back}"
    return Response(page, status=404, mimetype="text/html")


class CookieOnlySessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, read only from a request that sends the cookie.

    Only the dashboard's browsers have one; every other request (all of the API) gets a
    new empty session without building the cookie's signer first, which Flask's own
    interface does on every request. Saving is unchanged: an empty session sets nothing.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def init_dashboard(app: Flask) -> None:
    app.session_interface = CookieOnlySessionInterface()
    app.register_blueprint(admin.bp)
    app.after_request(_page_headers)
    redis_url = app.config.get("REDIS_URL")
    if not redis_url:
        app.add_url_rule(URL_PREFIX, "rq_dashboard_unavailable", _unavailable)
        return
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    rq_dashboard.web.setup_rq_connection(app)
    app.before_request(_guard)
    for miss in _DASHBOARD_MISSES:
        app.register_error_handler(miss, _not_found_in_dashboard)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
