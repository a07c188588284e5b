"""The application factory: config → extensions → blueprints → error handlers → CLI."""

from __future__ import annotations

import types
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.api import init_request_conventions
from app.cli import register_cli
from app.db import configure_sqlite, include_object
from app.errors import register_error_handlers
from app.extensions import api, cors, db, jwt, limiter, migrate, redis_queues
from app.jobs import register_session_hooks
from app.observability import configure_logging, init_observability
from app.security import init_security
from app.storage import init_storage
from config import Config, get_config


class StorefrontFlask(Flask):
    """Flask, asking once per function whether it is a coroutine function.

    Flask's ``ensure_sync`` asks ``inspect.iscoroutinefunction`` for every hook and view
    of every request (about ten per request, a few microseconds each); the answer
    depends only on the function, so it is remembered (keyed by the function, not by
    the bound method a class-based view makes anew per request).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._coroutine_functions: dict[Callable[..., Any], bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        target = func.__func__ if isinstance(func, types.MethodType) else func
        if not isinstance(target, types.FunctionType):  # partials, callable objects: as Flask does
            return super().ensure_sync(func)
        known = self._coroutine_functions.get(target)
        if known is None:
            known = self._coroutine_functions[target] = iscoroutinefunction(func)
        return self.async_to_sync(func) if known else func


def create_app(config: Config | None = None) -> Flask:
    app = StorefrontFlask(__name__)
    app.config.from_object(config or get_config())
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider attribute; keep schema field order
    configure_logging(app.config["LOG_LEVEL"])

    hops = int(app.config["PROXY_FIX_X_FOR"])
    if hops:
        # X-Forwarded-Host stays untrusted (x_host=0): absolute URLs come from PUBLIC_BASE_URL.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)  # type: ignore[method-assign]  # the documented way to install WSGI middleware

    _init_extensions(app)
    _register_blueprints(app)
    register_error_handlers(app)
    register_cli(app)
    return app


def _init_extensions(app: Flask) -> None:
    # Request ids first, so that every later hook (rate limits included) can log them.
    init_observability(app)
    init_security(app)
    init_request_conventions(app)
    configure_sqlite(app)
    db.init_app(app)
    migrate.init_app(app, db, compare_type=True, render_as_batch=True, include_object=include_object)
    api.init_app(app)
    jwt.init_app(app)
    limiter.init_app(app)
    redis_queues.init_app(app)
    init_storage(app)
    register_session_hooks()
    if app.config["CORS_ORIGINS"]:
        cors.init_app(
            app,
            origins=app.config["CORS_ORIGINS"],
            expose_headers=[
                "X-Request-ID",
                "Link",
                "ETag",
                "Location",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Idempotent-Replayed",
                "Content-Disposition",
            ],
        )


def _register_blueprints(app: Flask) -> None:
    from app import apidocs, health, models  # noqa: F401  (models: the complete metadata)
    from app.auth import pages as account_pages
    from app.auth import routes as auth_routes
    from app.auth import tokens  # noqa: F401  (registers the JWT loaders)
    from app.auth.dashboard import init_dashboard
    from app.orders import routes as orders_routes
    from app.products import cache as catalog_cache
    from app.products import routes as products_routes
    from app.uploads import routes as uploads_routes
    from app.users import routes as users_routes

    app.register_blueprint(health.bp)
    app.register_blueprint(apidocs.bp)
    app.register_blueprint(account_pages.bp)
    api.register_blueprint(auth_routes.blp)
    api.register_blueprint(users_routes.blp)
    api.register_blueprint(orders_routes.blp)
    products_routes.register_converters(app, api)
    api.register_blueprint(products_routes.blp)
    api.register_blueprint(uploads_routes.blp)
    catalog_cache.register_session_hooks()
    init_dashboard(app)
