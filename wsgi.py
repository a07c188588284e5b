"""The gunicorn target: ``gunicorn wsgi:app``."""

from __future__ import annotations

from app import create_app
from config import ConfigError, get_config, load_local_env

load_local_env()
try:
    app = create_app(get_config().for_web())
except ConfigError as exc:  # its message says it all: no traceback around it
    raise SystemExit(f"storefront: {exc}") from None
