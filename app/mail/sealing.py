"""Encryption at rest for mail bodies that carry a one-time token.

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

__all__ = ["InvalidToken", "seal", "unseal"]

_KEY_CACHE = "storefront.mail_sealing"


def _fernet() -> Fernet:
    fernet: Fernet | None = current_app.extensions.get(_KEY_CACHE)
    if fernet is None:
        secret = str(current_app.config["SECRET_KEY"]).encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"storefront mail outbox").derive(secret)
        fernet = current_app.extensions[_KEY_CACHE] = Fernet(base64.urlsafe_b64encode(key))
    return fernet


def seal(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode("ascii")


def unseal(sealed: str) -> str:
    """The plain text; ``InvalidToken`` if it was sealed under another ``SECRET_KEY``."""
    return _fernet().decrypt(sealed.encode("ascii")).decode()
