"""The gunicorn target: ``gunicorn wsgi:app``."""

from __future__ import annotations

from app import create_app
from config import ConfigError, load_local_env

load_local_env()
try:
    app = create_app()
except ConfigError as exc:  # its message says it all: no traceback around it
    raise SystemExit(f"storefront: {exc}") from None
