"""Encryption at rest for mail bodies that carry a one-time token (and for personal data
given to a job: ``JOB_ARGUMENTS``).

A verification or reset link is as good as a password until it expires: the outbox row
holds it only sealed (Fernet: AES-128-CBC with HMAC-SHA256), under a key derived from
``SECRET_KEY``, so a database dump or backup alone yields no usable token. Delivery
unseals it, and a delivered body is redacted outright.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

__all__ = ["JOB_ARGUMENTS", "InvalidToken", "seal", "unseal"]

_KEY_CACHE = "storefront.mail_sealing"
MAIL_OUTBOX = "storefront mail outbox"
# Personal data a job is given (a reset request's address): RQ keeps a job's arguments in
# Redis, where the dashboard and the worker's log show them.
JOB_ARGUMENTS = "storefront job arguments"


def _fernet(context: str) -> Fernet:
    """One key per use, each derived from ``SECRET_KEY``: a token sealed for one use does
    not open as another."""
    keys: dict[str, Fernet] = current_app.extensions.setdefault(_KEY_CACHE, {})
    fernet = keys.get(context)
    if fernet is None:
        secret = str(current_app.config["SECRET_KEY"]).encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=context.encode()).derive(secret)
        fernet = keys[context] = Fernet(base64.urlsafe_b64encode(key))
    return fernet


def seal(text: str, *, context: str = MAIL_OUTBOX) -> str:
    """``text`` encrypted and authenticated (URL-safe base64: never an ``@``)."""
    return _fernet(context).encrypt(text.encode()).decode("ascii")


def unseal(sealed: str, *, context: str = MAIL_OUTBOX) -> str:
    """The plain text; ``InvalidToken`` if it was sealed under another ``SECRET_KEY``."""
    return _fernet(context).decrypt(sealed.encode("ascii")).decode()
