"""argon2id hashing and the password policy of API.md.

Passwords are hashed, checked and judged in Unicode NFKC (NIST SP 800-63B 5.1.1.2): one
password typed on keyboards that send different code points for it (an ``é`` composed or as
``e`` and a combining accent) is one password. Hashes made before that are of the text as
sent: a check also tries it as sent, and marks the hash for an upgrade (``needs_rehash``).
"""

from __future__ import annotations

import string
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g
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
_AS_SENT_KEY = "storefront_hashes_of_unnormalised_passwords"


def normalised(password: str) -> str:
    """The password as it is hashed, checked and judged: NFKC."""
    return unicodedata.normalize("NFKC", password)


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
    return _hasher().hash(normalised(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the account exists: an absent hash is checked
    against a dummy one, so unknown emails cost the same time as wrong passwords.

    The password is checked in NFKC, then, if that differs from it and fails, as sent: a
    hash made before passwords were normalised. That second check is made for a dummy hash
    too (the work depends on the text sent, never on the account); a hash it matches is
    remembered for this request or command, and ``needs_rehash`` says it needs an upgrade.
    """
    hasher = _hasher()
    target = password_hash if password_hash is not None else str(current_app.extensions[_DUMMY_KEY])
    candidate = normalised(password)
    ok = _matches(hasher, target, candidate)
    if not ok and candidate != password:
        ok = _matches(hasher, target, password)
        if ok and password_hash is not None:
            g.setdefault(_AS_SENT_KEY, set()).add(password_hash)
    return ok and password_hash is not None


def _matches(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether a hash just checked should be replaced by ``hash_password`` of the same
    password: made with other argon2 parameters, or of a password not normalised."""
    return password_hash in g.get(_AS_SENT_KEY, ()) or _hasher().check_needs_rehash(password_hash)


def _context(email: str | None, full_name: str | None) -> list[str]:
    """What an attacker who targets this account knows: its email and name."""
    words: list[str] = []
    if email:
        local, _, domain = email.lower().partition("@")
        words += [email.lower(), local, *local.replace("_", ".").replace("-", ".").split("."), domain.split(".")[0]]
    if full_name:
        name = normalised(full_name).lower()
        words += [name, *name.split()]
    return [w for w in words if w]


def policy_problems(password: str, *, email: str | None, full_name: str | None = None) -> list[str]:
    """What is wrong with a new password (empty when it is acceptable). The API refuses
    unfit text before this (app.api); the command line does not parse JSON."""
    if (unfit := text_problem(password)) is not None:
        return [unfit]
    password = normalised(password)  # what is stored, and what the estimator must see
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
