"""Use cases of the users domain: profiles and administration."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from blinker import Namespace

from app.db import db, escape_like, utcnow
from app.errors import Conflict, ErrorDetail, NotFound, PermissionDenied, ValidationFailed
from app.pagination import Page, SortKey, paginate
from app.permissions import ROLE_PERMISSIONS, Role, has_permission
from app.users import lockout
from app.users.models import User
from app.users.passwords import hash_password, policy_problems
from app.users.permissions import MANAGE_USERS

_signals = Namespace()
# Sent (inside the caller's transaction) when a user's existing sessions must end:
# deactivation, deletion, a password change. The auth domain revokes them, and retires
# the password-reset links sent before.
sessions_invalidated = _signals.signal("users.sessions-invalidated")
# Sent (inside the caller's transaction) when an account is deleted, with the address it
# had (``email``) and the one its row takes instead (``replacement``): each domain lets go
# of the personal data it keeps of it (sessions' addresses and devices, mails, links).
account_deleted = _signals.signal("users.account-deleted")
# A deleted account's row keeps its id (orders, imports name it), nothing personal: its
# address (freed for a new account), its name, its password.
DELETED_NAME = "Deleted account"
DELETED_DOMAIN = "deleted.invalid"  # RFC 2606: never a real address

SORTABLE = {"created_at": User.created_at, "email": User.email}


def password_details(password: str, *, email: str, full_name: str | None) -> list[ErrorDetail]:
    problems = policy_problems(password, email=email, full_name=full_name)
    return [{"field": "password", "message": " ".join(problems)}] if problems else []


def check_password_policy(password: str, *, email: str, full_name: str | None = None) -> None:
    details = password_details(password, email=email, full_name=full_name)
    if details:
        raise ValidationFailed(details=details)


def find_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))


def create(*, email: str, password: str, full_name: str, role: Role = Role.CUSTOMER, verified: bool = False) -> User:
    """Add a user to the current transaction (flushes; the caller commits). ``verified``:
    an operator vouches for the address (the CLI's accounts), no link is needed."""
    check_password_policy(password, email=email, full_name=full_name)
    user = User(email=email.strip().lower(), password_hash=hash_password(password), full_name=full_name, role=role)
    if verified:
        user.email_verified_at = utcnow()
    db.session.add(user)
    db.session.flush()
    return user


def promote_to_admin(*, user_id: uuid.UUID, password: str) -> User:
    """An operator's promotion (``flask create-admin --promote``): the account becomes an
    active admin with the operator's password, unlocked, and every session it had ends, so
    whoever registered it keeps nothing (flushes; the caller commits)."""
    user = get(user_id=user_id)
    check_password_policy(password, email=user.email, full_name=user.full_name)
    user.role = Role.ADMIN
    user.is_active = True
    user.password_hash = hash_password(password)
    lockout.clear_failures(user)
    user.updated_at = utcnow()
    sessions_invalidated.send(user, keep_session_id=None)
    db.session.flush()
    return user


def lock_account(user_id: uuid.UUID) -> User | None:
    """The account's row, locked until the transaction ends, as it is now (whatever the
    session held). Every change to an account's credentials or standing (a password
    changed or reset, a token spent, a deactivation, a role) and every session opened for
    it happens under this lock, users row first: a sign-in racing a change either sees it
    or is ended by it, and two changes wait for each other instead of deadlocking."""
    return db.session.scalar(
        sa.select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )


def get(*, user_id: uuid.UUID) -> User:
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound("User not found")
    return user


def list_(*, args: Mapping[str, Any]) -> Page[User]:
    stmt = sa.select(User).where(User.deleted_at.is_(None))
    if "role" in args:
        stmt = stmt.where(User.role == args["role"])
    if "is_active" in args:
        stmt = stmt.where(User.is_active == args["is_active"])
    if args.get("q"):
        pattern = f"%{escape_like(args['q'].lower())}%"
        stmt = stmt.where(
            sa.or_(User.email.like(pattern, escape="\\"), sa.func.lower(User.full_name).like(pattern, escape="\\"))
        )
    return paginate(stmt, args, sortable=SORTABLE, default_sort=[SortKey("created_at", True)], tiebreak=User.id)


def update_me(*, user_id: uuid.UUID, data: Mapping[str, Any], current_session_id: uuid.UUID | None) -> User:
    """Change one's own name and/or password; a new password ends the other sessions.

    ``current_password`` is checked like a login: a wrong one counts toward the account's
    lockout (a stolen access token is no way to guess the password), and while the account
    is locked the answer is 423 whatever was sent.
    """
    user = get(user_id=user_id)
    if "password" in data:
        _change_password(user, data, current_session_id)
    if "full_name" in data:
        user.full_name = data["full_name"]
    user.updated_at = utcnow()
    db.session.commit()
    return user


def _change_password(user: User, data: Mapping[str, Any], current_session_id: uuid.UUID | None) -> None:
    details = password_details(data["password"], email=user.email, full_name=data.get("full_name", user.full_name))
    if not lockout.check_password(user, data["current_password"]):  # 423 while locked
        raise ValidationFailed(details=[{"field": "current_password", "message": "Incorrect password."}, *details])
    if details:
        db.session.commit()  # the check succeeded (its count cleared), whatever the new password's fate
        raise ValidationFailed(details=details)
    checked = user.password_hash
    new_hash = hash_password(data["password"])
    # Under the account's lock, the password checked must still be the account's: a reset
    # or another change that committed meanwhile wins, and this one is refused.
    if lock_account(user.id) is None or user.password_hash != checked:
        db.session.rollback()
        raise ValidationFailed(details=[{"field": "current_password", "message": "Incorrect password."}])
    user.password_hash = new_hash
    sessions_invalidated.send(user, keep_session_id=current_session_id)


def _for_administration(actor_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """The account ``actor_id`` administers, with both rows locked (in id order: two admins
    acting on each other wait, not deadlock) and the actor's right checked again under the
    lock: of two admins demoting each other at once, the second finds itself demoted (403)
    rather than leave the shop without an admin."""
    rows = db.session.scalars(
        sa.select(User)
        .where(User.id.in_({actor_id, user_id}))
        .order_by(User.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    by_id = {row.id: row for row in rows}
    actor = by_id.get(actor_id)
    if actor is None or not actor.can_authenticate or not has_permission(actor, MANAGE_USERS):
        raise PermissionDenied("You no longer have permission to manage users")
    user = by_id.get(user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound("User not found")
    return user


def update(*, actor_id: uuid.UUID, user_id: uuid.UUID, data: Mapping[str, Any]) -> User:
    """Administration: role, activation, name."""
    user = _for_administration(actor_id, user_id)
    if user.id == actor_id and (data.get("role", user.role) != Role.ADMIN or data.get("is_active") is False):
        raise Conflict("You cannot remove your own admin access or deactivate yourself")
    # A promotion applies to the sessions the account has (they are checked against its
    # role on every request); a demotion, which takes permissions away, ends them, as a
    # deactivation does: a later promotion must not bring back a demoted admin's sessions
    # (a dashboard cookie among them).
    demoted = "role" in data and not ROLE_PERMISSIONS[Role(data["role"])] >= ROLE_PERMISSIONS[Role(user.role)]
    for field in ("full_name", "role", "is_active"):
        if field in data:
            setattr(user, field, data[field])
    if data.get("is_active") is False or demoted:
        sessions_invalidated.send(user, keep_session_id=None)
    user.updated_at = utcnow()
    db.session.commit()
    return user


def delete(*, actor_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Soft delete: the account can no longer log in, every session ends, and its personal
    data goes: the row keeps its id (its orders, which keep their own copy of what was
    ordered and where to, still name it) and nothing else of the person; the address is
    free for a new account."""
    user = _for_administration(actor_id, user_id)
    if user.id == actor_id:
        raise Conflict("You cannot delete your own account here")
    address, replacement = user.email, f"deleted-{user.id.hex}@{DELETED_DOMAIN}"
    user.deleted_at = utcnow()
    user.is_active = False
    sessions_invalidated.send(user, keep_session_id=None)
    account_deleted.send(user, email=address, replacement=replacement)
    user.email = replacement
    user.full_name = DELETED_NAME
    user.password_hash = hash_password(secrets.token_urlsafe(32))  # a hash nobody has the password of
    user.email_verified_at = user.locked_until = None
    user.failed_login_count = 0
    db.session.commit()
