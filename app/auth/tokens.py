"""JWTs: issuing pairs, the Redis blocklist, and every flask-jwt-extended loader.

Access and refresh tokens carry ``sid`` (their session) besides the standard claims, so
revoking a session kills its access tokens at once, not 15 minutes later. Every JWT
failure answers with the API.md envelope (the library's defaults are 422 ``{"msg"}``).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, g
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from redis.exceptions import RedisError

from app.auth.models import AuthSession
from app.db import db, utcnow
from app.errors import error_response
from app.extensions import jwt, redis_queues
from app.users.models import User

log = logging.getLogger(__name__)

BLOCKLIST_PREFIX = "auth:blocklist:"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105  (the OAuth token type name)


def new_jti() -> str:
    return uuid.uuid4().hex


def issue_pair(user: User, session: AuthSession, refresh_jti: str) -> TokenPair:
    """A fresh access token and the session's refresh token ``refresh_jti``.

    The refresh token expires when its session does (the whole second at or before it):
    past the session's end it is expired (TOKEN_EXPIRED), the same answer a client gets for
    any old token. Its ``exp`` depends on the session alone, so the same jti minted again
    (the reuse grace) is the same token in all but ``iat``.
    """
    claims = {"role": user.role, "sid": str(session.id)}
    access_ttl: timedelta = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    access = create_access_token(identity=str(user.id), additional_claims=claims)
    expires = math.floor(session.expires_at.timestamp())
    refresh = create_refresh_token(
        identity=str(user.id), additional_claims={**claims, "jti": refresh_jti, "exp": expires}
    )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=int(access_ttl.total_seconds()))


def refresh_expiry() -> datetime:
    """When a session opened now ends unless it is refreshed."""
    now = utcnow()
    return session_end(started=now, now=now)


def session_end(*, started: datetime, now: datetime) -> datetime:
    """When a session started at ``started`` and refreshed at ``now`` ends: the idle timeout
    from now (``JWT_REFRESH_TOKEN_SECONDS``), never past ``SESSION_MAX_SECONDS`` from its start."""
    idle: timedelta = current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    cap = timedelta(seconds=int(current_app.config["SESSION_MAX_SECONDS"]))
    return min(now + idle, started + cap)


def blocklist_token(jti: str, exp: int) -> None:
    """Refuse this token (by ``jti``) until it would have expired anyway."""
    ttl = max(1, exp - int(utcnow().timestamp()))
    try:
        redis_queues.connection.set(BLOCKLIST_PREFIX + jti, "1", ex=ttl)
    except RedisError:
        # The session row is revoked too, and the loader checks it: still refused.
        log.warning("could not write token %s to the Redis blocklist", jti)


def _is_blocklisted(jti: str) -> bool:
    try:
        return bool(redis_queues.connection.exists(BLOCKLIST_PREFIX + jti))
    except RedisError:
        log.warning("Redis blocklist unavailable; relying on the session check")
        return False


# Every authenticated request runs this: built once (building and keying a statement
# costs about as much as running it), executed with the token's ids bound.
_SESSION_AND_USER = (
    sa.select(AuthSession.revoked_at, AuthSession.expires_at, User)
    .join(User, User.id == AuthSession.user_id)
    .where(AuthSession.id == sa.bindparam("session_id"), AuthSession.user_id == sa.bindparam("user_id"))
)


@jwt.token_in_blocklist_loader
def _token_revoked(jwt_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Revoked if blocklisted, if its session is revoked or expired, or if it has no session."""
    if _is_blocklisted(str(payload.get("jti"))):
        return True
    try:
        session_id = uuid.UUID(str(payload.get("sid")))
        user_id = uuid.UUID(str(payload.get("sub")))
    except ValueError:
        return True
    row = db.session.execute(_SESSION_AND_USER, {"session_id": session_id, "user_id": user_id}).first()
    if row is None:
        return True
    revoked_at, expires_at, user = row
    g.jwt_user = user
    return revoked_at is not None or expires_at <= utcnow()


@jwt.user_lookup_loader
def _load_user(jwt_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
    user: User | None = g.pop("jwt_user", None)
    if user is None or str(user.id) != payload.get("sub") or not user.can_authenticate:
        return None
    g.user_id = user.id
    return user


@jwt.unauthorized_loader
def _missing_token(reason: str) -> Response:
    return error_response(401, "UNAUTHORIZED", "Missing or malformed Authorization header (expected: Bearer <token>)")


@jwt.invalid_token_loader
def _invalid_token(reason: str) -> Response:
    return error_response(401, "UNAUTHORIZED", "Invalid token")


@jwt.expired_token_loader
def _expired_token(jwt_header: dict[str, Any], payload: dict[str, Any]) -> Response:
    return error_response(401, "TOKEN_EXPIRED", "Token has expired")


@jwt.revoked_token_loader
def _revoked_token(jwt_header: dict[str, Any], payload: dict[str, Any]) -> Response:
    return error_response(401, "TOKEN_REVOKED", "Token has been revoked")


@jwt.needs_fresh_token_loader
def _needs_fresh(jwt_header: dict[str, Any], payload: dict[str, Any]) -> Response:
    return error_response(401, "UNAUTHORIZED", "A fresh login is required")


@jwt.user_lookup_error_loader
def _user_gone(jwt_header: dict[str, Any], payload: dict[str, Any]) -> Response:
    return error_response(401, "UNAUTHORIZED", "This account no longer exists or is disabled")


@jwt.token_verification_failed_loader
def _verification_failed(jwt_header: dict[str, Any], payload: dict[str, Any]) -> Response:
    return error_response(401, "UNAUTHORIZED", "Invalid token")


def claims_of(token: str) -> dict[str, Any]:
    """Decode one of our tokens (tests and tools); verifies signature, iss and aud."""
    claims: dict[str, Any] = decode_token(token)
    return claims
