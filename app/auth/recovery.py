"""Registration, email verification and password reset, with no user enumeration."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from limits import parse_many
from limits.errors import StorageError
from sqlalchemy.exc import IntegrityError

from app.auth.models import AccountToken, TokenPurpose
from app.auth.permissions import address_key
from app.auth.sessions import revoke_all
from app.db import db, new_id, utcnow
from app.errors import Conflict, ServiceUnavailable, ValidationFailed
from app.extensions import limiter
from app.jobs import PendingJob, enqueue_now, fail_for_good
from app.mail import sealing
from app.mail import service as mail
from app.permissions import Role
from app.users import service as users_service
from app.users.models import User
from app.users.passwords import hash_password

log = logging.getLogger(__name__)

# By dotted path: the job module imports this one.
SEND_RESET_LINK = "app.auth.tasks.send_reset_link"


def _invalid_token() -> ValidationFailed:
    return ValidationFailed(details=[{"field": "token", "message": "Invalid or expired token."}])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue_token(user: User, purpose: TokenPurpose, ttl_seconds: int) -> str:
    """A 32-byte random token; only its SHA-256 is stored.

    A new verification link retires the older ones (only the latest works: only the
    account asks for one). Reset links do not retire each other: anyone can ask for one
    for any address, and a request from someone else must not break the link its owner
    was just mailed. They work until one is used (``reset_password`` retires the rest),
    the password changes, or they expire; ``RATELIMIT_RECOVERY_MAIL`` bounds how many
    are sent."""
    if purpose != TokenPurpose.PASSWORD_RESET:
        _retire_tokens(user.id, purpose)
    token = secrets.token_urlsafe(32)
    db.session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=_digest(token),
            expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        )
    )
    return token


def _retire_tokens(user_id: uuid.UUID, purpose: TokenPurpose) -> None:
    """The user's unused tokens of ``purpose`` stop working (in the caller's transaction)."""
    db.session.execute(
        sa.update(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _on_sessions_invalidated(user: User, **kwargs: Any) -> None:
    # A password change (or a deactivation, a deletion) ends a reset link sent before it
    # as it ends sessions: a link mailed before the change must not undo it.
    _retire_tokens(user.id, TokenPurpose.PASSWORD_RESET)


users_service.sessions_invalidated.connect(_on_sessions_invalidated)


def _on_account_deleted(user: User, *, email: str, replacement: str, **kwargs: Any) -> None:
    db.session.execute(sa.delete(AccountToken).where(AccountToken.user_id == user.id))
    mail.forget_recipient(email, replacement=replacement)


users_service.account_deleted.connect(_on_account_deleted)


def _may_send_recovery_mail(address: str, *, with_link: bool) -> bool:
    """Whether ``address`` may get another mail anyone can ask for, counting this one:
    ``RATELIMIT_RECOVERY_MAIL`` per address, whoever asks and from wherever, so that
    nobody fills an inbox with them; reset links and notices without one ("you already
    have an account") each have their own budget. A link refused finds one in the inbox
    that still works: no window is longer than a link lives (checked at start), and links
    do not retire each other."""
    if not limiter.enabled:  # RATELIMIT_ENABLED=false: no limits at all, this one included
        return True
    strategy = limiter.limiter
    scope = "recovery-link" if with_link else "recovery-notice"
    try:
        return all(
            strategy.hit(item, scope, address_key(address))
            for item in parse_many(current_app.config["RATELIMIT_RECOVERY_MAIL"])
        )
    except StorageError as exc:
        raise ServiceUnavailable("The rate-limit storage is unavailable; try again shortly") from exc


def _spend_token(token: str, purpose: TokenPurpose) -> User:
    """Mark the token used (atomically: it works once) and return its user."""
    now = utcnow()
    row = db.session.scalar(
        sa.select(AccountToken).where(AccountToken.token_hash == _digest(token), AccountToken.purpose == purpose)
    )
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise _invalid_token()
    # The account's row first, as every change to an account takes it (a password change,
    # a deactivation: they retire its tokens after): racing them, this waits, not deadlocks.
    user = users_service.lock_account(row.user_id)
    spent = db.session.execute(
        sa.update(AccountToken)
        .where(AccountToken.id == row.id, AccountToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(spent, "rowcount", 0) != 1 or user is None or not user.can_authenticate:
        db.session.rollback()
        raise _invalid_token()
    return user


def register(*, email: str, password: str, full_name: str) -> User:
    """Create a customer and mail a verification link.

    An email that already has an account gets the same answer (a fresh-looking user that
    is not stored) and its owner is mailed instead, so registration reveals nothing.
    """
    existing = users_service.find_by_email(email)
    if existing is None:
        try:
            user = users_service.create(email=email, password=password, full_name=full_name)
            token = _issue_token(user, TokenPurpose.VERIFY_EMAIL, current_app.config["VERIFY_TOKEN_SECONDS"])
            mail.send(
                to=user.email,
                template="welcome",
                context={"full_name": user.full_name, "token": token},
                sensitive=True,
            )
            db.session.commit()
            return user
        except IntegrityError:
            db.session.rollback()  # registered concurrently: answer as for an existing email
            existing = users_service.find_by_email(email)
    else:
        hash_password(password)  # the same work as a real registration
    if existing is not None and existing.deleted_at is None:
        # Its owner may be here because the verification link expired, or because someone
        # else registered the address first: an unverified account's mail carries a link
        # to choose its password, which verifies the address and ends every session of
        # whoever registered it (a link that only verified would hand the owner an account
        # a stranger still holds the password of).
        context: dict[str, object] = {"full_name": existing.full_name, "token": None}
        with_link = existing.email_verified_at is None and existing.can_authenticate
        if _may_send_recovery_mail(existing.email, with_link=with_link):
            if with_link:
                seconds = current_app.config["RESET_TOKEN_SECONDS"]
                context["token"] = _issue_token(existing, TokenPurpose.PASSWORD_RESET, seconds)
            mail.send(to=existing.email, template="account_exists", context=context, sensitive=with_link)
            db.session.commit()
    now = utcnow()
    return User(
        id=new_id(),
        email=email,
        full_name=full_name,
        role=Role.CUSTOMER.value,
        is_active=True,
        email_verified_at=None,
        created_at=now,
        updated_at=now,
    )


def resend_verification(*, user_id: uuid.UUID) -> None:
    """Mail the account a new verification link (one that expired or went astray)."""
    user = users_service.get(user_id=user_id)
    if user.email_verified_at is not None:
        raise Conflict("Your email address is already verified")
    token = _issue_token(user, TokenPurpose.VERIFY_EMAIL, current_app.config["VERIFY_TOKEN_SECONDS"])
    mail.send(
        to=user.email, template="verify_email", context={"full_name": user.full_name, "token": token}, sensitive=True
    )
    db.session.commit()


def verify_email(*, token: str) -> None:
    user = _spend_token(token, TokenPurpose.VERIFY_EMAIL)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    db.session.commit()


def forgot_password(*, email: str) -> None:
    """Hand the request to a job, the same one for every email: the request does the same
    work (and takes the same time) whether or not an account exists.

    If Redis cannot take the job, the work is done here instead (the mail then waits in
    the outbox for the relay): an outage delays a reset link but loses none.
    """
    # Sealed: RQ keeps a job's arguments in Redis, and the dashboard and the worker's log
    # show them.
    sealed = sealing.seal(email, context=sealing.JOB_ARGUMENTS)
    job = PendingJob("mail", SEND_RESET_LINK, (sealed,), None, 2, "password reset request")
    if not enqueue_now(job):
        send_reset_link(email=email)


def email_of_reset_job(argument: str) -> str:
    """The address a reset job was given: sealed (``forgot_password``), or plain from a job
    the previous version enqueued (a sealed one has no ``@``). One sealed under another
    ``SECRET_KEY`` cannot be read: the job fails for good (no retry can read it), visibly."""
    if "@" in argument:
        return argument
    try:
        return sealing.unseal(argument, context=sealing.JOB_ARGUMENTS)
    except sealing.InvalidToken:
        fail_for_good(
            "The address of this password reset request was sealed under another SECRET_KEY and cannot be "
            "read; the request is dropped (its sender can ask for a reset link again)."
        )


def send_reset_link(*, email: str) -> None:
    """Mail a single-use reset link if the account exists (the job behind ``forgot_password``)."""
    user = users_service.find_by_email(email)
    if user is None or not user.can_authenticate:
        db.session.rollback()
        return
    if not _may_send_recovery_mail(user.email, with_link=True):
        db.session.rollback()
        log.info("no reset link sent: RATELIMIT_RECOVERY_MAIL reached for the address (the links sent still work)")
        return
    token = _issue_token(user, TokenPurpose.PASSWORD_RESET, current_app.config["RESET_TOKEN_SECONDS"])
    mail.send(
        to=user.email, template="password_reset", context={"full_name": user.full_name, "token": token}, sensitive=True
    )
    db.session.commit()


def reset_password(*, token: str, password: str) -> uuid.UUID:
    """Set a new password with a reset token; every session of the account ends. The
    token came by mail to the account's address: the address is verified too."""
    user = _spend_token(token, TokenPurpose.PASSWORD_RESET)
    users_service.check_password_policy(password, email=user.email, full_name=user.full_name)
    _retire_tokens(user.id, TokenPurpose.PASSWORD_RESET)  # the other links sent
    user.password_hash = hash_password(password)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    user.failed_login_count = 0
    user.locked_until = None
    revoke_all(user.id)
    db.session.commit()
    return user.id
