"""/admin/login and /admin/logout: the sign-in of the RQ dashboard, for browsers.

The form goes through the same login service, limits and lockout as ``/auth/login`` and
gets the same answers. Success opens a short session (a row in ``auth_sessions``, so it
can be revoked like any other, and ends with ``logout-all`` or a promotion) referenced
from Flask's signed session cookie (``SameSite=Strict``, ``HttpOnly``, ``Secure`` in
production, path ``/admin``). Every state-changing request carries a CSRF token bound to
that session and must come from our own origin.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, redirect, render_template, request, session
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response as BaseResponse

from app.auth import service
from app.auth.permissions import per_email, per_ip
from app.auth.schemas import LoginSchema
from app.errors import DomainError, ServiceUnavailable
from app.security import client_ip, header_text
from app.urls import public_base_url
from app.users.models import User

bp = Blueprint("admin", __name__, url_prefix="/admin")

DASHBOARD_HOME = "/admin/rq/"
# Read by rq-dashboard's own scripts, which send it back as X-CSRFToken on every POST.
CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"


def same_origin() -> bool:
    """The request comes from one of our pages (or from no browser at all)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in {"same-origin", "none"}
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: CSRF needs one
    public = urlsplit(public_base_url())
    return origin == f"{public.scheme}://{public.netloc}"


def csrf_ok() -> bool:
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token")
    return bool(expected and sent) and hmac.compare_digest(str(expected), str(sent)) and same_origin()


def _session_id() -> uuid.UUID | None:
    try:
        return uuid.UUID(str(session.get("sid")))
    except ValueError:
        return None


def signed_in_admin() -> User | None:
    """The admin of this browser's dashboard session, if it is still live."""
    session_id = _session_id()
    return service.dashboard_user(session_id=session_id) if session_id is not None else None


def _safe_next(target: str | None) -> str:
    """Only back into the dashboard (never an open redirect), and only as printable ASCII:
    a CR or LF would end up in the Location header."""
    if (
        target
        and target.startswith(DASHBOARD_HOME)
        and "//" not in target
        and "\\" not in target
        and all("!" <= char <= "~" for char in target)
    ):
        return target
    return DASHBOARD_HOME


def _page(message: str | None = None, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = render_template("admin/login.html", message=message, next=_safe_next(request.values.get("next")))
    return Response(body, status=status, headers=headers, mimetype="text/html")


@bp.errorhandler(TooManyRequests)
def _too_many(error: TooManyRequests) -> Response:
    """A browser gets the sign-in page saying so, not the API's JSON."""
    return _page("Too many attempts from here in a short time. Wait a minute, then try again.", 429)


@bp.errorhandler(ServiceUnavailable)
def _unavailable(error: ServiceUnavailable) -> Response:
    """The sign-in page too when a service it needs is down (the rate limits' storage)."""
    return _page(error.message, 503, error.headers)


@bp.get("/login")
def login_page() -> Response | BaseResponse:
    if signed_in_admin() is not None:
        return redirect(_safe_next(request.args.get("next")), code=303)
    return _page()


@bp.post("/login")
@per_ip
@per_email
def login() -> Response | BaseResponse:
    if not same_origin():
        return _page("This form must be sent from this site.", 403)
    errors = LoginSchema().validate(
        {"email": request.form.get("email", ""), "password": request.form.get("password", "")}
    )
    if errors:
        return _page(service.INVALID_CREDENTIALS, 422)
    try:
        opened = service.dashboard_login(
            email=request.form["email"],
            password=request.form["password"],
            user_agent=header_text(request.user_agent.string),
            ip=client_ip(),
        )
    except DomainError as error:  # 401 and 423, with the same words as /auth/login
        return _page(error.message, error.status, error.headers)
    token = secrets.token_urlsafe(32)
    session.clear()
    session.permanent = True
    session.update(sid=str(opened.id), csrf=token)
    response = redirect(_safe_next(request.form.get("next")), code=303)
    config = current_app.config
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=int(config["ADMIN_SESSION_SECONDS"]),
        path="/admin",
        secure=bool(config["SESSION_COOKIE_SECURE"]),
        httponly=False,  # the dashboard's scripts read it
        samesite="Strict",
    )
    return response


@bp.post("/logout")
def logout() -> Response | BaseResponse:
    if not csrf_ok():
        return _page("Sign-out refused: the request did not come from a dashboard page.", 403)
    session_id = _session_id()
    if session_id is not None:
        service.end_session(session_id=session_id)
    session.clear()
    response = redirect("/admin/login", code=303)
    response.delete_cookie(CSRF_COOKIE, path="/admin")
    return response
