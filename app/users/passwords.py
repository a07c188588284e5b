"""argon2id hashing and the password policy of API.md."""

from __future__ import annotations

import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from zxcvbn import zxcvbn

from app.schema import text_problem

MIN_LENGTH = 12
MAX_LENGTH = 256
# zxcvbn's guessability score (0-4) a new password must reach; the estimator looks at the
# first ESTIMATE_CHARS characters (its own cap: its cost grows fast with the length).
MIN_STRENGTH = 3
ESTIMATE_CHARS = 72
_HASHER_KEY = "storefront.password_hasher"
_DUMMY_KEY = "storefront.dummy_hash"


def _hasher() -> PasswordHasher:
    hasher: PasswordHasher | None = current_app.extensions.get(_HASHER_KEY)
    if hasher is None:
        config = current_app.config
        hasher = PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
        )
        current_app.extensions[_HASHER_KEY] = hasher
        # Made now, with the hasher, so that no login pays for it: the first unknown-email
        # login of a process must not be slower than the others.
        current_app.extensions[_DUMMY_KEY] = hasher.hash("dummy-password-for-timing")
    return hasher


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the account exists: an absent hash is checked
    against a dummy one, so unknown emails cost the same time as wrong passwords."""
    hasher = _hasher()
    target = password_hash if password_hash is not None else str(current_app.extensions[_DUMMY_KEY])
    try:
        ok = hasher.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


def _context(email: str | None, full_name: str | None) -> list[str]:
    """What an attacker who targets this account knows: its email and name."""
    words: list[str] = []
    if email:
        local, _, domain = email.lower().partition("@")
        words += [email.lower(), local, *local.replace("_", ".").replace("-", ".").split("."), domain.split(".")[0]]
    if full_name:
        words += [full_name.lower(), *full_name.lower().split()]
    return [w for w in words if w]


def policy_problems(password: str, *, email: str | None, full_name: str | None = None) -> list[str]:
    """What is wrong with a new password (empty when it is acceptable). The API refuses
    unfit text before this (app.api); the command line does not parse JSON."""
    if (unfit := text_problem(password)) is not None:
        return [unfit]
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Must be at least {MIN_LENGTH} characters long.")
    if len(password) > MAX_LENGTH:
        return [f"Must be at most {MAX_LENGTH} characters long."]
    classes = [
        any(c in string.ascii_lowercase for c in password),
        any(c in string.ascii_uppercase for c in password),
        any(c in string.digits for c in password),
        any(not c.isalnum() for c in password) or any(ord(c) > 127 and c.isalpha() for c in password),
    ]
    if sum(classes) < 2:
        problems.append("Must mix at least two kinds of characters (lower case, upper case, digits, symbols).")
    if email and password.strip().lower() in {email.lower(), email.split("@")[0].lower()}:
        problems.append("Must not be your email address.")
    elif len(password) >= MIN_LENGTH:
        estimate = zxcvbn(password[:ESTIMATE_CHARS], user_inputs=_context(email, full_name))
        if estimate["score"] < MIN_STRENGTH:
            warning = estimate["feedback"].get("warning") or ""
            problems.append(f"Too easy to guess. {warning}".strip())
    return problems
