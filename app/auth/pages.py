"""The pages that mail links land on: ``/account/verify-email`` and ``/account/reset-password``.

A GET only shows a form, so a link scanner or preview that follows the link spends no
token; the form POSTs the token back to the same page, which calls the same recovery
service as the API. Plain HTML, no script: the pages' own Content-Security-Policy allows
their one stylesheet (by hash) and posting to themselves, nothing else. Where a frontend
serves these two paths instead, ``FRONTEND_URL`` points the mail links there.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import marshmallow as ma
from flask import Blueprint, Response, render_template, request
from werkzeug.exceptions import TooManyRequests

from app.auth import recovery
from app.auth.permissions import email_limit, per_form_ip
from app.auth.schemas import ForgotPasswordSchema
from app.db import db
from app.errors import ServiceUnavailable, ValidationFailed

bp = Blueprint("account", __name__, url_prefix="/account", template_folder="templates")

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222;line-height:1.5}"
    "label{display:block;margin:.75rem 0 .25rem}input{width:100%;padding:.5rem;box-sizing:border-box}"
    "button{margin-top:1rem;padding:.5rem 1rem}.error{color:#a00}.done{color:#060}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
INVALID_LINK = "This link is invalid, was already used, or has expired."


# The API's per-email budget, shared (counted on the form's POST, not on showing it).
per_form_email = email_limit(methods=["POST"])


def _page(template: str, *, status: int = 200, **context: Any) -> Response:
    html = render_template(f"account/{template}", style=STYLE, **context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store"  # the page carries a one-time token
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.errorhandler(TooManyRequests)
def _too_many(error: TooManyRequests) -> Response:
    """A browser gets a page, not the API's JSON (the limit's headers are added as for any
    answer)."""
    return _page(
        "done.html",
        status=429,
        title="Too many attempts",
        message="Too many attempts from here in a short time. Wait a minute, then open the link again.",
    )


@bp.errorhandler(ServiceUnavailable)
def _unavailable(error: ServiceUnavailable) -> Response:
    """A page too when a service these pages need is down (the rate limits' storage)."""
    response = _page("done.html", status=503, title="Try again shortly", message=error.message)
    response.headers.update(error.headers)
    return response


def _messages(error: ValidationFailed, field: str) -> list[str]:
    return [d["message"] for d in error.details if d.get("field") == field]


@bp.route("/verify-email", methods=["GET", "POST"])
@per_form_ip
def verify_email() -> Response:
    """GET: a button that confirms the address; POST: spend the token."""
    if request.method == "GET":
        return _page("verify_email.html", token=request.args.get("token", ""))
    try:
        recovery.verify_email(token=request.form.get("token", ""))
    except ValidationFailed:
        db.session.rollback()
        return _page("verify_email.html", status=400, token="", error=INVALID_LINK)
    return _page("done.html", title="Email verified", message="Thank you: your email address is verified.")


@bp.route("/reset-password", methods=["GET", "POST"])
@per_form_ip
@per_form_email
def reset_password() -> Response:
    """With a token: choose a new password. Without one: ask for a reset link."""
    if request.method == "GET":
        token = request.args.get("token", "")
        return _page("reset_password.html" if token else "forgot_password.html", token=token)
    if "email" in request.form:
        return _forgot()
    token = request.form.get("token", "")
    try:
        recovery.reset_password(token=token, password=request.form.get("password", ""))
    except ValidationFailed as exc:
        db.session.rollback()  # a refused password leaves the token usable
        if _messages(exc, "token"):
            return _page("reset_password.html", status=400, token="", error=INVALID_LINK)
        return _page("reset_password.html", status=400, token=token, error=" ".join(_messages(exc, "password")))
    return _page(
        "done.html",
        title="Password changed",
        message="Your password is changed and every session of your account has ended. Log in with the new one.",
    )


def _forgot() -> Response:
    try:
        email = ForgotPasswordSchema().load({"email": request.form.get("email", "")})["email"]
    except ma.ValidationError:
        email = None  # answered as for an unknown address: the page reveals nothing either way
    if email:
        recovery.forgot_password(email=email)
    return _page(
        "done.html",
        title="Check your mail",
        message="If an account exists for this email, a reset link has been sent.",
    )
