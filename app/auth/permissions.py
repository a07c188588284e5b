"""Who may call the auth endpoints, and how often."""

from __future__ import annotations

from flask import current_app, request
from flask_limiter.util import get_remote_address

from app.extensions import limiter
from app.permissions import require_auth, require_refresh_token

authenticated = require_auth()
refresh_token = require_refresh_token()


def _ip_limit() -> str:
    return str(current_app.config["RATELIMIT_AUTH_IP"])


def _email_limit() -> str:
    return str(current_app.config["RATELIMIT_AUTH_EMAIL"])


def _email_key() -> str:
    """The submitted email (normalised), so one account cannot be hammered from many IPs."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        return "email:" + email.strip().lower()[:254]
    return "ip:" + get_remote_address()


per_ip = limiter.limit(_ip_limit, scope="auth-ip")
per_email = limiter.limit(_email_limit, key_func=_email_key, scope="auth-email")
