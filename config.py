"""Application configuration, read from the environment (12-factor).

``get_config()`` picks a class by ``APP_ENV`` (``development`` by default, ``testing``,
``production``). Every class reads ``os.environ`` when it is instantiated, so tests and
processes can change the environment before building an app. This module imports nothing
from ``app``.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from limits import parse_many
from limits.storage import SCHEMES as RATELIMIT_SCHEMES  # type: ignore[attr-defined]  # the registry limits parses URIs with; not re-exported by name
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

BASE_DIR = Path(__file__).resolve().parent


class ConfigError(RuntimeError):
    """The environment does not describe a runnable application."""


def _bool(value: str | None, *, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# PostgreSQL's statement_timeout and lock_timeout are milliseconds in a 32-bit integer.
POSTGRESQL_MAX_TIMEOUT_SECONDS = (2**31 - 1) // 1000


def whole_number(
    env: Mapping[str, str], name: str, default: int, *, at_least: int, at_most: int | None = None, unit: str = ""
) -> int:
    """A whole number of ``unit`` from ``at_least`` to ``at_most``: a setting out of range
    stops the start with one line, not a 500 (or a silent misbehaviour) at the first request
    it meets."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    in_units = f" ({unit})" if unit else ""
    if value < at_least:
        raise ConfigError(f"{name} must be at least {at_least}{in_units}, got {value}")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{name} must be at most {at_most}{in_units}, got {value}")
    return value


@dataclass(frozen=True)
class SMTPSettings:
    """What ``smtp://user:pass@host:587?starttls=true&timeout=10`` (or ``smtps://…``) says."""

    host: str
    port: int
    username: str | None
    password: str | None
    use_ssl: bool
    starttls: bool
    timeout: float


_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})


def smtp_settings(url: str) -> SMTPSettings:
    """The settings of an ``smtp://`` or ``smtps://`` URL; ValueError saying what is wrong
    with it. The one reading of ``MAIL_URL``: checked here at start, used by the mail
    backend (app.mail.backends) for every delivery."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"its scheme is {parts.scheme!r}")
    if not parts.hostname or parts.path not in ("", "/") or parts.fragment:
        raise ValueError("it needs a host, and nothing after it but options")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("its port is not a port number") from None
    options = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - {"starttls", "timeout"})
    if unknown:
        raise ValueError(f"unknown option {', '.join(unknown)} (starttls and timeout are known)")
    starttls = options.get("starttls", "false").lower()
    if starttls not in _TRUE | _FALSE:
        raise ValueError("starttls must be true or false")
    try:
        timeout = float(options.get("timeout", "10"))
    except ValueError:
        timeout = 0.0
    if not 0 < timeout <= 600:
        raise ValueError("timeout must be seconds, more than 0 and at most 600")
    use_ssl = parts.scheme == "smtps"
    return SMTPSettings(
        host=parts.hostname,
        port=port or (465 if use_ssl else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_ssl=use_ssl,
        starttls=starttls in _TRUE,
        timeout=timeout,
    )


def _check_redis_url(name: str, url: str) -> None:
    """A Redis URL redis-py can connect to (``redis://``, ``rediss://``, ``unix://``)."""
    if urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"{name} must be a redis://, rediss:// or unix:// URL")


def _redis_tls(url: str, *, verify: bool) -> str:
    """``url``, told not to verify the server's certificate when ``verify`` is off and it is
    a ``rediss://`` URL that does not say otherwise: Heroku Redis serves TLS with a
    self-signed certificate, and its add-on rewrites ``REDIS_URL`` when it rotates
    credentials, so the option cannot live in the URL itself. Every Redis client here (the
    queues, the cache, the rate limits, the dashboard) takes the URL, so all of them agree."""
    parts = urlsplit(url)
    if verify or parts.scheme != "rediss" or "ssl_cert_reqs" in parse_qs(parts.query):
        return url
    return urlunsplit(parts._replace(query="&".join(filter(None, (parts.query, "ssl_cert_reqs=none")))))


def _rate_limits(env: Mapping[str, str], name: str, default: str) -> str:
    """A flask-limiter limit string (``10 per minute; 100 per day``), checked now: a typo
    would otherwise be a 500 on every request it guards, or no limit at all."""
    value = (env.get(name) or "").strip() or default
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} must be rate limits such as '10 per minute; 100 per day', got {value!r}") from None
    return value


def _no_window_longer_than(limits: str, seconds: int, *, name: str) -> None:
    longest = max(item.get_expiry() for item in parse_many(limits))
    if longest > seconds:
        raise ConfigError(
            f"{name}'s windows must be at most RESET_TOKEN_SECONDS ({seconds} s), so that a refused request "
            f"leaves a working link; got a window of {longest} s"
        )


LOG_LEVELS = tuple(logging.getLevelNamesMapping())  # WARN and FATAL too, as logging takes them
DATABASE_DIALECTS = ("postgresql", "sqlite")


def _check_mail_url(url: str) -> None:
    """``MAIL_URL`` checked whole at start: a mistake is found now, not by every mail job
    failing later. The message never shows the URL's user or password."""
    if url == "console" or urlsplit(url).scheme == "console":
        return
    try:
        smtp_settings(url)
    except ValueError as exc:
        scheme, separator, rest = url.partition("://")
        shown = f"{scheme}{separator}…@{rest.rpartition('@')[2]}" if "@" in rest else url
        raise ConfigError(
            f"MAIL_URL must be console or smtp(s)://[user:password@]host[:port][?starttls=…&timeout=…]; "
            f"{shown!r} cannot be used: {exc}"
        ) from None


def _seconds(env: Mapping[str, str], name: str, default: int, *, at_least: int = 1, at_most: int | None = None) -> int:
    """A duration in whole seconds, at least 1 unless said otherwise."""
    return whole_number(env, name, default, at_least=at_least, at_most=at_most, unit="seconds")


def _decimal(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = (env.get(name) or default).strip()
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ConfigError(f"{name} must be a decimal number, got {raw!r}") from exc
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{name} must be a non-negative number, got {raw!r}")
    return value


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip().rstrip("/")
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return raw


STORAGE_SCHEMES = ("file://", "s3://")


def normalize_database_url(url: str) -> str:
    """Accept Heroku's ``postgres://`` and plain ``postgresql://``; use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _check_database_url(url: str) -> None:
    """A URL of a database this app runs on (PostgreSQL, SQLite), with its driver installed;
    the message never shows the URL's password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("DATABASE_URL must be a postgres:// or sqlite:/// URL") from None
    if parsed.get_backend_name() not in DATABASE_DIALECTS:
        raise ConfigError(
            f"DATABASE_URL must be a postgres:// or sqlite:/// URL, got a {parsed.get_backend_name()!r} one"
        )


class Config:
    """Settings shared by every environment; the embedded default needs no environment."""

    ENV_NAME = "development"
    TESTING = False
    DEBUG = False

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env: Mapping[str, str] = os.environ if environ is None else environ
        self._env = env

        self.SECRET_KEY = env.get("SECRET_KEY") or self._dev_secret("SECRET_KEY")
        self.JWT_SECRET_KEY = env.get("JWT_SECRET_KEY") or self._dev_secret("JWT_SECRET_KEY")

        database_url = env.get("DATABASE_URL") or self.default_database_url()
        self.SQLALCHEMY_DATABASE_URI = normalize_database_url(database_url)
        _check_database_url(self.SQLALCHEMY_DATABASE_URI)
        # hide_parameters: a database error's message (logged, and kept in a failed job's
        # traceback) names the statement but never its values: password hashes, addresses.
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, object] = {"pool_pre_ping": True, "hide_parameters": True}
        # A database that accepts connections and never answers: a 503 after this many
        # seconds, not a request thread held for libpq's default (over two minutes), which
        # gunicorn's gthread workers do not time out (their heartbeat keeps going).
        self.DATABASE_CONNECT_TIMEOUT = _seconds(env, "DATABASE_CONNECT_TIMEOUT", 5)
        if self.SQLALCHEMY_DATABASE_URI.startswith("postgresql"):
            self.SQLALCHEMY_ENGINE_OPTIONS["connect_args"] = {"connect_timeout": self.DATABASE_CONNECT_TIMEOUT}
        self.SQLALCHEMY_RECORD_QUERIES = False

        # Seconds a statement of a web process may run, waits for locks included
        # (``app.db.bound_statements``, from gunicorn.conf.py): a request held up behind a
        # migration or a long lock gets a 503 instead of its thread being held; 0: no limit.
        # Jobs and flask commands (the release's migrations among them) have none.
        self.DATABASE_STATEMENT_TIMEOUT = _seconds(
            env, "DATABASE_STATEMENT_TIMEOUT", 30, at_least=0, at_most=POSTGRESQL_MAX_TIMEOUT_SECONDS
        )
        # Seconds a migration waits for a table's lock before it gives up (and tries again,
        # MIGRATION_LOCK_ATTEMPTS times in all): the release fails rather than queueing every
        # request behind its lock while a long read runs.
        self.MIGRATION_LOCK_TIMEOUT = _seconds(env, "MIGRATION_LOCK_TIMEOUT", 5, at_most=POSTGRESQL_MAX_TIMEOUT_SECONDS)
        self.MIGRATION_LOCK_ATTEMPTS = whole_number(env, "MIGRATION_LOCK_ATTEMPTS", 3, at_least=1)

        # None means the embedded default: an in-process Redis stand-in, jobs run in-process.
        # REDIS_TLS_VERIFY=false: a rediss:// server's certificate is not verified (Heroku
        # Redis's is self-signed); the traffic is still encrypted.
        self.REDIS_TLS_VERIFY = _bool(env.get("REDIS_TLS_VERIFY"), default=True)
        redis_url = env.get("REDIS_URL") or None
        if redis_url is not None:
            _check_redis_url("REDIS_URL", redis_url)
            redis_url = _redis_tls(redis_url, verify=self.REDIS_TLS_VERIFY)
        self.REDIS_URL: str | None = redis_url
        # On SIGTERM a worker's job in progress has this long to finish; then it fails (and is
        # retried). Keep it under the platform's own limit (Heroku SIGKILLs after 30 s).
        self.WORKER_SHUTDOWN_GRACE_SECONDS = _seconds(env, "WORKER_SHUTDOWN_GRACE_SECONDS", 25)
        # Only the clock holding a lock in Redis schedules; it renews it every third of this,
        # and another clock takes over within about this long after it dies.
        self.CLOCK_LOCK_SECONDS = _seconds(env, "CLOCK_LOCK_SECONDS", 45, at_least=3)

        self.RATELIMIT_ENABLED = _bool(env.get("RATELIMIT_ENABLED"), default=True)
        storage_uri = env.get("RATELIMIT_STORAGE_URI") or None
        if storage_uri is not None:
            scheme = urlsplit(storage_uri).scheme
            if scheme not in RATELIMIT_SCHEMES:
                raise ConfigError(
                    f"RATELIMIT_STORAGE_URI must be a storage the limits library knows (redis://, rediss://, "
                    f"redis+unix://, memory://, …), got a {scheme!r} one"
                )
            storage_uri = _redis_tls(storage_uri, verify=self.REDIS_TLS_VERIFY)
        elif self.REDIS_URL is not None and self.REDIS_URL.startswith("unix://"):
            storage_uri = "redis+unix://" + self.REDIS_URL.removeprefix("unix://")  # limits' name for it
        self.RATELIMIT_STORAGE_URI = storage_uri or self.REDIS_URL or "memory://"
        self.RATELIMIT_HEADERS_ENABLED = True
        # Storage errors reach app.ratelimits, which decides per endpoint (auth: 503, the rest:
        # served unlimited, logged and counted). Never per-process counters: with N processes
        # they would multiply every limit by N.
        self.RATELIMIT_SWALLOW_ERRORS = False
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = False
        self.RATELIMIT_STORAGE_OPTIONS: dict[str, object] = {"wrap_exceptions": True}
        if self.RATELIMIT_STORAGE_URI.startswith(("redis://", "rediss://")):
            self.RATELIMIT_STORAGE_OPTIONS.update(socket_connect_timeout=1, socket_timeout=1)
        # Per client (the user of a valid access token, else the IP), per endpoint.
        self.RATELIMIT_DEFAULT = _rate_limits(env, "RATELIMIT_DEFAULT", "600 per minute")
        self.RATELIMIT_ORDERS = _rate_limits(env, "RATELIMIT_ORDERS", "10 per minute; 100 per day")

        self.MAIL_URL = env.get("MAIL_URL") or "console"
        _check_mail_url(self.MAIL_URL)
        self.MAIL_FROM = env.get("MAIL_FROM") or "Storefront <no-reply@storefront.local>"
        self.STORAGE_URL = env.get("STORAGE_URL") or f"file://{BASE_DIR / 'instance' / 'uploads'}"
        if not self.STORAGE_URL.startswith(STORAGE_SCHEMES):
            raise ConfigError(f"STORAGE_URL must be file://<dir> or s3://<bucket>[/prefix], got {self.STORAGE_URL!r}")
        # S3 and S3-compatible stores: credentials come from boto3's usual chain
        # (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a role); another endpoint from here.
        self.S3_ENDPOINT_URL: str | None = env.get("S3_ENDPOINT_URL") or None
        self.S3_REGION: str | None = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        # Seconds a storage call may wait to connect, and between bytes of its answer (each of
        # its two attempts): a store that stops answering costs a request seconds, not minutes.
        self.STORAGE_TIMEOUT = _seconds(env, "STORAGE_TIMEOUT", 10)
        # Uploads: per-purpose size limits, how long a direct-upload target and a download
        # link live, and when an upload that was never completed is purged.
        self.UPLOAD_IMAGE_MAX_BYTES = whole_number(
            env, "UPLOAD_IMAGE_MAX_BYTES", 10 * 1024 * 1024, at_least=1, unit="bytes"
        )
        self.UPLOAD_IMPORT_MAX_BYTES = whole_number(
            env, "UPLOAD_IMPORT_MAX_BYTES", 50 * 1024 * 1024, at_least=1, unit="bytes"
        )
        self.UPLOAD_TARGET_SECONDS = _seconds(env, "UPLOAD_TARGET_SECONDS", 15 * 60)
        self.UPLOAD_DOWNLOAD_SECONDS = _seconds(env, "UPLOAD_DOWNLOAD_SECONDS", 5 * 60)
        if self.UPLOAD_DOWNLOAD_SECONDS > 5 * 60:
            raise ConfigError(
                "UPLOAD_DOWNLOAD_SECONDS must be between 1 and 300 (download links live 5 minutes at most)"
            )
        self.UPLOAD_EXPIRE_HOURS = whole_number(env, "UPLOAD_EXPIRE_HOURS", 24, at_least=1, unit="hours")
        # Bulk imports: rows per file, rows per transaction, and how long one run may take.
        self.IMPORT_MAX_ROWS = whole_number(env, "IMPORT_MAX_ROWS", 200_000, at_least=1, unit="rows")
        self.IMPORT_BATCH_SIZE = whole_number(env, "IMPORT_BATCH_SIZE", 5_000, at_least=1, unit="rows")
        self.IMPORT_JOB_TIMEOUT = _seconds(env, "IMPORT_JOB_TIMEOUT", 3600)
        self.RATELIMIT_UPLOADS = _rate_limits(env, "RATELIMIT_UPLOADS", "60 per minute")
        # Where clients reach this API (links in mail). Unset outside production: the address
        # actually served (app.urls.public_base_url). FRONTEND_URL: a web app that serves
        # /account/verify-email and /account/reset-password itself, for the mail links.
        self.PUBLIC_BASE_URL: str | None = _url(env, "PUBLIC_BASE_URL")
        self.FRONTEND_URL: str | None = _url(env, "FRONTEND_URL")
        self.PORT = whole_number(env, "PORT", 5000, at_least=1, at_most=65535)
        self.CORS_ORIGINS = [o.strip() for o in (env.get("CORS_ORIGINS") or "").split(",") if o.strip()]
        self.MAX_CONTENT_LENGTH = whole_number(env, "MAX_CONTENT_LENGTH", 16 * 1024 * 1024, at_least=1, unit="bytes")
        # Every body but an upload's: JSON this large is already far beyond any real request.
        self.MAX_JSON_BYTES = whole_number(env, "MAX_JSON_BYTES", 64 * 1024, at_least=1, unit="bytes")
        self.LOG_LEVEL = (env.get("LOG_LEVEL") or "INFO").strip().upper()
        if self.LOG_LEVEL not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {self.LOG_LEVEL!r}")
        # Number of proxies in front of the app whose X-Forwarded-For/-Proto are trusted. 0 by
        # default everywhere: without a proxy any client could pick its address (set 1 on
        # Heroku, whose router appends the real one). X-Forwarded-Host is never trusted.
        self.PROXY_FIX_X_FOR = whole_number(env, "PROXY_FIX_X_FOR", 0, at_least=0, unit="proxies")
        # Strict-Transport-Security max-age (0: not sent); production turns it on.
        self.HSTS_SECONDS = _seconds(env, "HSTS_SECONDS", 0, at_least=0)
        # /metrics: with a token, only `Authorization: Bearer <token>` reads it.
        self.METRICS_TOKEN = env.get("METRICS_TOKEN") or None
        self.CURRENCY = (env.get("CURRENCY") or "USD").strip().upper()
        if not (len(self.CURRENCY) == 3 and self.CURRENCY.isascii() and self.CURRENCY.isalpha()):
            raise ConfigError(f"CURRENCY must be an ISO 4217 code such as USD or EUR, got {self.CURRENCY!r}")
        # Order totals: tax as a fraction of the subtotal, a flat shipping fee that is waived
        # from FREE_SHIPPING_OVER (unset: never waived).
        self.TAX_RATE = _decimal(env, "TAX_RATE", "0")
        self.SHIPPING_FLAT = _decimal(env, "SHIPPING_FLAT", "0.00")
        free = env.get("FREE_SHIPPING_OVER")
        self.FREE_SHIPPING_OVER = _decimal(env, "FREE_SHIPPING_OVER", "0") if free else None
        self.IDEMPOTENCY_KEY_HOURS = whole_number(env, "IDEMPOTENCY_KEY_HOURS", 24, at_least=1, unit="hours")
        # Unpaid orders hold their stock this long, then the clock cancels them; a customer
        # holds at most ORDER_MAX_PENDING of them at once.
        self.ORDER_PAYMENT_MINUTES = whole_number(env, "ORDER_PAYMENT_MINUTES", 30, at_least=1, unit="minutes")
        self.ORDER_MAX_PENDING = whole_number(env, "ORDER_MAX_PENDING", 3, at_least=1, unit="orders")
        # Only an account whose address is verified may place orders (hold stock).
        self.ORDER_REQUIRES_VERIFIED_EMAIL = _bool(env.get("ORDER_REQUIRES_VERIFIED_EMAIL"), default=True)
        # The catalog's read cache (app/products/cache.py) lives in Redis: it is on whenever
        # REDIS_URL is set, unless CATALOG_CACHE=off; entries expire after the TTL anyway.
        # CATALOG_CACHE_URL: a Redis of its own for it (one with an eviction policy, which
        # the queues' Redis must not have); REDIS_URL's by default.
        self.CATALOG_CACHE = _bool(env.get("CATALOG_CACHE"), default=True)
        cache_url = env.get("CATALOG_CACHE_URL") or None
        if cache_url is not None:
            _check_redis_url("CATALOG_CACHE_URL", cache_url)
            if self.REDIS_URL is None:
                raise ConfigError("CATALOG_CACHE_URL needs REDIS_URL (without it nothing is cached)")
            cache_url = _redis_tls(cache_url, verify=self.REDIS_TLS_VERIFY)
        self.CATALOG_CACHE_URL: str | None = cache_url or self.REDIS_URL
        self.CATALOG_CACHE_TTL = _seconds(env, "CATALOG_CACHE_TTL", 600)

        self.JWT_ACCESS_TOKEN_EXPIRES = timedelta(seconds=_seconds(env, "JWT_ACCESS_TOKEN_SECONDS", 15 * 60))
        self.JWT_REFRESH_TOKEN_EXPIRES = timedelta(seconds=_seconds(env, "JWT_REFRESH_TOKEN_SECONDS", 7 * 24 * 3600))
        # A session (a login's refresh tokens) ends JWT_REFRESH_TOKEN_SECONDS after its last
        # refresh (each refresh moves its end), and at the latest this long after the login.
        self.SESSION_MAX_SECONDS = _seconds(env, "SESSION_MAX_SECONDS", 90 * 24 * 3600)
        # How long personal data that served its purpose is kept: an ended session's row
        # (its device and address), a delivered mail's body (an order's shipping address).
        self.RETENTION_SECONDS = _seconds(env, "RETENTION_SECONDS", 30 * 24 * 3600)
        # The refresh token the last rotation spent, presented again this soon after it (a
        # client that lost the answer, or a second thread of it), gets the session's current
        # one again instead of ending the session; 0: no grace.
        self.REFRESH_REUSE_GRACE_SECONDS = _seconds(env, "REFRESH_REUSE_GRACE_SECONDS", 30, at_least=0)

        self.JWT_ALGORITHM = "HS256"
        self.JWT_TOKEN_LOCATION = ["headers"]
        self.JWT_ENCODE_ISSUER = self.JWT_DECODE_ISSUER = env.get("JWT_ISSUER") or "storefront-api"
        self.JWT_ENCODE_AUDIENCE = self.JWT_DECODE_AUDIENCE = env.get("JWT_AUDIENCE") or "storefront-clients"
        self.JWT_ERROR_MESSAGE_KEY = "message"

        # argon2id cost; the test profile turns it down (hashing is deliberately slow).
        self.ARGON2_TIME_COST = whole_number(env, "ARGON2_TIME_COST", 3, at_least=1, unit="passes")
        self.ARGON2_PARALLELISM = whole_number(env, "ARGON2_PARALLELISM", 2, at_least=1, unit="lanes")
        # argon2 needs 8 KiB a lane (its own check would fail at the first hash: a 500).
        self.ARGON2_MEMORY_COST = whole_number(
            env, "ARGON2_MEMORY_COST", 64 * 1024, at_least=8 * self.ARGON2_PARALLELISM, unit="KiB"
        )

        self.LOGIN_MAX_FAILURES = whole_number(env, "LOGIN_MAX_FAILURES", 5, at_least=1, unit="failures")
        # The RQ dashboard's sign-in: a signed cookie (Flask's session) for /admin only.
        self.ADMIN_SESSION_SECONDS = _seconds(env, "ADMIN_SESSION_SECONDS", 30 * 60)
        self.PERMANENT_SESSION_LIFETIME = timedelta(seconds=self.ADMIN_SESSION_SECONDS)
        self.SESSION_COOKIE_NAME = "storefront_admin"
        self.SESSION_COOKIE_PATH = "/admin"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Strict"
        self.SESSION_COOKIE_SECURE = False
        self.LOGIN_LOCKOUT_SECONDS = _seconds(env, "LOGIN_LOCKOUT_SECONDS", 15 * 60)
        self.VERIFY_TOKEN_SECONDS = _seconds(env, "VERIFY_TOKEN_SECONDS", 24 * 3600)
        self.RESET_TOKEN_SECONDS = _seconds(env, "RESET_TOKEN_SECONDS", 3600)
        # Rate limits of the account endpoints (flask-limiter syntax), per IP and per email.
        self.RATELIMIT_AUTH_IP = _rate_limits(env, "RATELIMIT_AUTH_IP", "20 per minute; 200 per hour")
        self.RATELIMIT_AUTH_EMAIL = _rate_limits(env, "RATELIMIT_AUTH_EMAIL", "10 per minute; 50 per hour")
        # Mails anyone can have sent to an address, per address whoever asks (each kind its
        # own budget: reset links; "you already have an account" notices without one):
        # beyond it a request is answered as always and sends nothing. No window is longer
        # than a link lives, so a refused request always leaves a working link in the inbox
        # (links no longer retire each other): nobody can keep an owner from a reset.
        self.RATELIMIT_RECOVERY_MAIL = _rate_limits(env, "RATELIMIT_RECOVERY_MAIL", "3 per 10 minutes; 10 per hour")
        _no_window_longer_than(self.RATELIMIT_RECOVERY_MAIL, self.RESET_TOKEN_SECONDS, name="RATELIMIT_RECOVERY_MAIL")

        # flask-smorest / OpenAPI
        self.API_TITLE = "Storefront API"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.1.0"
        self.OPENAPI_URL_PREFIX = "/api/v1"
        self.OPENAPI_JSON_PATH = "openapi.json"
        # /api/v1/docs is app.apidocs (Swagger UI from a pinned package, no CDN).

    def _dev_secret(self, name: str) -> str:
        # Outside production a missing secret gets a random per-process value: nothing
        # secret lives in code, and tokens simply do not survive a restart.
        return secrets.token_urlsafe(32)

    def default_database_url(self) -> str:
        return f"sqlite:///{BASE_DIR / 'instance' / 'storefront.db'}"


class DevelopmentConfig(Config):
    ENV_NAME = "development"


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env: Mapping[str, str] = os.environ if environ is None else environ
        overrides = dict(env)
        # The test suite never touches the development database or Redis by accident.
        overrides["DATABASE_URL"] = env.get("TEST_DATABASE_URL") or self.default_database_url()
        overrides["REDIS_URL"] = env.get("TEST_REDIS_URL") or ""
        overrides.pop("RATELIMIT_STORAGE_URI", None)
        overrides["CATALOG_CACHE_URL"] = env.get("TEST_CATALOG_CACHE_URL") or ""
        overrides.setdefault("MAIL_URL", "console")
        # Cheap hashing keeps the suite fast; production defaults stay in Config.
        overrides.setdefault("ARGON2_TIME_COST", "1")
        overrides.setdefault("ARGON2_MEMORY_COST", "1024")
        overrides.setdefault("ARGON2_PARALLELISM", "1")
        super().__init__(overrides)

    def default_database_url(self) -> str:
        return f"sqlite:///{BASE_DIR / 'instance' / 'test.db'}"


class ProductionConfig(Config):
    ENV_NAME = "production"
    # MAIL_URL too: the console backend, the silent default elsewhere, would write live
    # password-reset links into the log drain. ``MAIL_URL=console`` stays an explicit choice.
    # PUBLIC_BASE_URL: links in mail are never derived from a request's (client-controlled)
    # Host header in production.
    REQUIRED = ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "MAIL_URL", "PUBLIC_BASE_URL")
    # Long enough not to be guessed offline from one signed token (HS256 keys, session cookies).
    SECRET_MIN_LENGTH = 32

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env: Mapping[str, str] = os.environ if environ is None else environ
        missing = [name for name in self.REQUIRED if not (env.get(name) or "").strip()]
        if missing:
            raise ConfigError(
                f"Refusing to start in production: missing required environment variable(s): {', '.join(missing)}"
            )
        super().__init__(env)
        short = [
            name
            for name in ("SECRET_KEY", "JWT_SECRET_KEY", "METRICS_TOKEN")
            if (value := env.get(name)) and len(value.strip()) < self.SECRET_MIN_LENGTH
        ]
        if short:
            raise ConfigError(
                f"Refusing to start in production: {', '.join(short)} must be at least {self.SECRET_MIN_LENGTH} "
                "characters (make one: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.SECRET_KEY == self.JWT_SECRET_KEY:
            raise ConfigError("Refusing to start in production: JWT_SECRET_KEY must differ from SECRET_KEY")
        if self.RATELIMIT_ENABLED and self.RATELIMIT_STORAGE_URI.startswith("memory://"):
            raise ConfigError(
                "Refusing to start in production: RATELIMIT_STORAGE_URI=memory:// would keep a separate "
                "count in every process"
            )
        self.HSTS_SECONDS = _seconds(env, "HSTS_SECONDS", 365 * 24 * 3600, at_least=0)
        self.SESSION_COOKIE_SECURE = True
        # A dyno's disk is neither shared between processes nor kept across restarts.
        if not self.STORAGE_URL.startswith("s3://") and not _bool(env.get("ALLOW_LOCAL_STORAGE"), default=False):
            raise ConfigError(
                "Refusing to start in production: STORAGE_URL must be s3://bucket/prefix "
                "(set ALLOW_LOCAL_STORAGE=1 to keep uploads on this machine's disk)"
            )

    def _dev_secret(self, name: str) -> str:  # pragma: no cover - guarded in __init__
        raise ConfigError(f"Refusing to start in production: {name} is not set")


def load_local_env() -> None:
    """Read a ``.env`` file (local use) as ``flask`` commands do, for the processes that are
    not ``flask`` commands: the web server and the worker. Variables already in the
    environment win, and ``FLASK_SKIP_DOTENV=1`` turns it off, as for ``flask``."""
    from flask.cli import load_dotenv
    from flask.helpers import get_load_dotenv

    if get_load_dotenv():
        load_dotenv()


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def get_config(name: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    env: Mapping[str, str] = os.environ if environ is None else environ
    key = (name or env.get("APP_ENV") or "development").strip().lower()
    try:
        config_class = CONFIGS[key]
    except KeyError as exc:
        raise ConfigError(f"APP_ENV must be one of {', '.join(CONFIGS)}, got {key!r}") from exc
    return config_class(env)
