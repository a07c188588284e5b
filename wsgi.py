"""The gunicorn target: ``gunicorn wsgi:app``."""

from __future__ import annotations

from app import create_app
from config import ConfigError

try:
    app = create_app()
except ConfigError as exc:  # its message says it all: no traceback around it
    raise SystemExit(f"storefront: {exc}") from None
