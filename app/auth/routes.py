"""/auth: registration, login, token rotation, logout, recovery and sessions."""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from flask_jwt_extended import get_jwt

from app.api import Blueprint
from app.auth import recovery, service
from app.auth.permissions import (
    authenticated,
    per_account,
    per_email,
    per_ip,
    per_ip_unless_refresh_token,
    refresh_token,
)
from app.auth.schemas import (
    AcceptedSchema,
    ForgotPasswordSchema,
    LoginSchema,
    RegisterSchema,
    ResetPasswordSchema,
    SessionSchema,
    TokenPairSchema,
    VerifyEmailSchema,
)
from app.auth.sessions import SessionView
from app.auth.tokens import TokenPair
from app.pagination import ListArgsSchema, Page
from app.permissions import current_principal
from app.security import client_ip, header_text
from app.users.models import User
from app.users.schemas import UserSchema

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Accounts, tokens and sessions")


def _user_agent() -> str | None:
    return header_text(request.user_agent.string)


@blp.route("/register", methods=["POST"])
@per_ip
@per_email
@blp.arguments(RegisterSchema)
@blp.response(201, UserSchema)
@blp.doc(operationId="register")
def register(data: dict[str, Any]) -> tuple[User, dict[str, str]]:
    """Create a customer account and email a verification link.

    An email that already has an account gets the same answer, a 201 with a user whose
    id is never stored, and its owner is mailed instead: registering reveals nothing
    about which emails have accounts.
    """
    user = recovery.register(**data)
    return user, {"Location": "/api/v1/users/me"}


@blp.route("/login", methods=["POST"])
@per_ip
@per_email
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, response="UNAUTHORIZED", description="Unknown email or wrong password (the same answer)")
@blp.alt_response(423, response="LOCKED", description="ACCOUNT_LOCKED after too many failed logins")
@blp.doc(operationId="login")
def login(data: dict[str, Any]) -> TokenPair:
    """Exchange email and password for an access and a refresh token."""
    return service.login(email=data["email"], password=data["password"], user_agent=_user_agent(), ip=client_ip())


@blp.route("/refresh", methods=["POST"])
@per_ip_unless_refresh_token
@per_account
@refresh_token
@blp.response(200, TokenPairSchema)
@blp.doc(operationId="refresh_tokens")
def refresh() -> TokenPair:
    """Rotate the refresh token (sent as the Bearer token): the old one is spent.

    The session's end moves to JWT_REFRESH_TOKEN_SECONDS (7 days) from now, never past
    SESSION_MAX_SECONDS (90 days) after its login; the new refresh token expires with it.
    Sending a spent refresh token again revokes its whole session (401 TOKEN_REVOKED),
    except the one spent last, sent again within REFRESH_REUSE_GRACE_SECONDS (30 s) of the
    refresh that spent it (its answer was lost, or two refreshes of one app raced): that
    gets the session's current refresh token again (same jti and expiry) and a fresh access
    token, and nothing is revoked.
    """
    return service.refresh(claims=get_jwt(), user_agent=_user_agent(), ip=client_ip())


@blp.route("/logout", methods=["POST"])
@authenticated
@blp.response(204)
@blp.doc(operationId="logout")
def logout() -> None:
    """Revoke this access token and its session."""
    service.logout(user_id=current_principal().id, claims=get_jwt())


@blp.route("/logout-all", methods=["POST"])
@authenticated
@blp.response(204)
@blp.doc(operationId="logout_all")
def logout_all() -> None:
    """Revoke every session of the caller."""
    service.logout_all(user_id=current_principal().id, claims=get_jwt())


@blp.route("/verify-email", methods=["POST"])
@per_ip
@blp.arguments(VerifyEmailSchema)
@blp.response(204)
@blp.doc(operationId="verify_email")
def verify_email(data: dict[str, Any]) -> None:
    """Confirm an email address with the emailed token."""
    recovery.verify_email(token=data["token"])


@blp.route("/verify-email/resend", methods=["POST"])
@per_account
@authenticated
@blp.response(202, AcceptedSchema)
@blp.alt_response(409, response="CONFLICT", description="The address is verified already")
@blp.doc(operationId="resend_verification")
def resend_verification() -> dict[str, str]:
    """Mail the caller a new link to verify their email address."""
    recovery.resend_verification(user_id=current_principal().id)
    return {"message": "A new verification link has been sent."}


@blp.route("/password/forgot", methods=["POST"])
@per_ip
@per_email
@blp.arguments(ForgotPasswordSchema)
@blp.response(202, AcceptedSchema)
@blp.doc(operationId="forgot_password")
def forgot_password(data: dict[str, Any]) -> dict[str, str]:
    """Email a single-use reset link if the account exists (the answer is always 202)."""
    recovery.forgot_password(email=data["email"])
    return {"message": "If an account exists for this email, a reset link has been sent."}


@blp.route("/password/reset", methods=["POST"])
@per_ip
@blp.arguments(ResetPasswordSchema)
@blp.response(204)
@blp.doc(operationId="reset_password")
def reset_password(data: dict[str, Any]) -> None:
    """Choose a new password with the emailed token; every session ends."""
    recovery.reset_password(token=data["token"], password=data["password"])


@blp.route("/sessions")
class Sessions(MethodView):
    @authenticated
    @blp.arguments(ListArgsSchema, location="query")
    @blp.response(200, SessionSchema(many=True))
    @blp.doc(operationId="list_sessions")
    def get(self, args: dict[str, Any]) -> Page[SessionView]:
        """Your live sessions (one per login), most recently used first."""
        return service.list_sessions(
            user_id=current_principal().id, current_session_id=uuid.UUID(get_jwt()["sid"]), args=args
        )


@blp.route("/sessions/<uuid:session_id>")
class SessionItem(MethodView):
    @authenticated
    @blp.response(204)
    @blp.doc(operationId="revoke_session")
    def delete(self, session_id: uuid.UUID) -> None:
        """Revoke one of your sessions."""
        service.revoke_session(user_id=current_principal().id, session_id=session_id)
