"""Configuration from the environment; production refuses to start without its secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, DevelopmentConfig, ProductionConfig, get_config, normalize_database_url

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "JWT_SECRET_KEY": "j" * 40,
    "DATABASE_URL": "postgres://u:p@db.example:5432/shop",
    "REDIS_URL": "redis://cache.example:6379/0",
    "MAIL_URL": "smtp://mailer:secret@smtp.example:587",
    "PUBLIC_BASE_URL": "https://api.shop.example",
    "STORAGE_URL": "s3://shop-uploads/media",
}


def test_production_lists_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as excinfo:
        get_config(environ={"APP_ENV": "production", "SECRET_KEY": "x" * 40})
    message = str(excinfo.value)
    for name in ("JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "MAIL_URL", "PUBLIC_BASE_URL"):
        assert name in message
    assert "SECRET_KEY," not in message.replace("JWT_SECRET_KEY,", "")


def test_production_rejects_shared_secret() -> None:
    env = {**PRODUCTION_ENV, "JWT_SECRET_KEY": PRODUCTION_ENV["SECRET_KEY"]}
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY must differ"):
        ProductionConfig(env)


def test_production_reads_environment_and_rewrites_heroku_url() -> None:
    config = get_config(environ=PRODUCTION_ENV)
    assert isinstance(config, ProductionConfig)
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u:p@db.example:5432/shop"
    assert PRODUCTION_ENV["REDIS_URL"] == config.RATELIMIT_STORAGE_URI
    assert config.PROXY_FIX_X_FOR == 0  # trusted only when set (README: Heroku sets 1)


def test_public_urls_must_be_http_urls() -> None:
    config = get_config(environ={**PRODUCTION_ENV, "PUBLIC_BASE_URL": "https://api.shop.example/"})
    assert config.PUBLIC_BASE_URL == "https://api.shop.example"
    assert config.FRONTEND_URL is None
    for name in ("PUBLIC_BASE_URL", "FRONTEND_URL"):
        with pytest.raises(ConfigError, match=name):
            get_config(environ={**PRODUCTION_ENV, name: "shop.example"})


def test_database_url_normalisation() -> None:
    assert normalize_database_url("postgresql://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_embedded_default_needs_no_environment() -> None:
    config = get_config(environ={})
    assert isinstance(config, DevelopmentConfig)
    assert config.SQLALCHEMY_DATABASE_URI.startswith("sqlite:///")
    assert config.REDIS_URL is None
    assert config.RATELIMIT_STORAGE_URI == "memory://"
    assert config.MAX_CONTENT_LENGTH == 16 * 1024 * 1024
    assert config.SECRET_KEY != config.JWT_SECRET_KEY


def test_bad_app_env_and_bad_integer_are_clear() -> None:
    with pytest.raises(ConfigError, match="APP_ENV"):
        get_config(environ={"APP_ENV": "staging"})
    with pytest.raises(ConfigError, match="MAX_CONTENT_LENGTH"):
        get_config(environ={"MAX_CONTENT_LENGTH": "lots"})


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import wsgi"],
        [sys.executable, "worker.py"],
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:0", "wsgi:app"],
    ],
    ids=["import-wsgi", "worker", "gunicorn"],
)
def test_production_process_refuses_to_start_and_names_missing_secrets(command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    env["APP_ENV"] = "production"
    env["FLASK_SKIP_DOTENV"] = "1"  # a developer's .env (make run writes one) would fill some in
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "SECRET_KEY, JWT_SECRET_KEY, DATABASE_URL, REDIS_URL, MAIL_URL, PUBLIC_BASE_URL" in output
    assert "Traceback" not in output  # the reason alone, once


def test_a_mail_url_no_backend_reads_is_refused_at_start() -> None:
    bad = (
        "blah",
        "http://mail.example",
        "smpt://mail.example:25",
        "smtp://",  # no host: it went to localhost:25
        "smtp://mail.example:99999",
        "smtp://mail.example:port",
        "smtp://mail.example:25?timeout=soon",
        "smtp://mail.example:25?timeout=0",
        "smtp://mail.example:25?starttls=maybe",
        "smtp://mail.example:25?tls=true",
        "smtp://mail.example:25/path",
        "smtp://user:s3cr#t@mail.example:25",  # an unescaped "#": the rest reads as a fragment
    )
    for url in bad:
        with pytest.raises(ConfigError, match="MAIL_URL must be console or smtp") as refused:
            get_config(environ={**PRODUCTION_ENV, "MAIL_URL": url})
        assert "s3cr" not in str(refused.value)  # the password is never shown
    good = (
        "console",
        "smtp://mail.example:25",
        "smtps://u:p@mail.example",
        "smtp://m.example:587?starttls=true&timeout=5",
    )
    for url in good:
        assert url == get_config(environ={**PRODUCTION_ENV, "MAIL_URL": url}).MAIL_URL


def test_postgresql_connections_give_up_after_the_connect_timeout() -> None:
    config = get_config(environ={**PRODUCTION_ENV, "DATABASE_CONNECT_TIMEOUT": "3"})
    assert config.SQLALCHEMY_ENGINE_OPTIONS["connect_args"] == {"connect_timeout": 3}
    assert get_config(environ=PRODUCTION_ENV).SQLALCHEMY_ENGINE_OPTIONS["connect_args"] == {"connect_timeout": 5}
    with pytest.raises(ConfigError, match="DATABASE_CONNECT_TIMEOUT"):
        get_config(environ={**PRODUCTION_ENV, "DATABASE_CONNECT_TIMEOUT": "0"})
    assert "connect_args" not in DevelopmentConfig({}).SQLALCHEMY_ENGINE_OPTIONS  # SQLite: a file, no timeout


def test_the_catalog_cache_may_have_a_redis_of_its_own() -> None:
    assert PRODUCTION_ENV["REDIS_URL"] == ProductionConfig(PRODUCTION_ENV).CATALOG_CACHE_URL
    own = {**PRODUCTION_ENV, "CATALOG_CACHE_URL": "rediss://cache.example:6380/0"}
    assert ProductionConfig(own).CATALOG_CACHE_URL == "rediss://cache.example:6380/0"
    with pytest.raises(ConfigError, match="CATALOG_CACHE_URL must be a redis://"):
        ProductionConfig({**PRODUCTION_ENV, "CATALOG_CACHE_URL": "http://cache.example"})
    # Without REDIS_URL (the embedded default) nothing is cached: a cache URL there is a mistake.
    with pytest.raises(ConfigError, match="CATALOG_CACHE_URL needs REDIS_URL"):
        DevelopmentConfig({"CATALOG_CACHE_URL": "redis://127.0.0.1:6379/3"})
    assert DevelopmentConfig({}).CATALOG_CACHE_URL is None


def test_reading_the_config_imports_nothing_of_the_app() -> None:
    """gunicorn.conf.py reads the config before it sets up Prometheus' multiprocess mode,
    which must happen before the app (and prometheus_client) is imported: a config that
    imported the app left /metrics without any worker's requests."""
    script = (
        "import sys, config\n"
        f"config.get_config(environ={dict(PRODUCTION_ENV)!r})\n"
        "loaded = sorted(m for m in sys.modules if m == 'app' or m.startswith('app.') or m.startswith('prometheus'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[2], timeout=60)


@pytest.mark.parametrize(
    "name",
    [
        "RATELIMIT_DEFAULT",
        "RATELIMIT_ORDERS",
        "RATELIMIT_UPLOADS",
        "RATELIMIT_AUTH_IP",
        "RATELIMIT_AUTH_EMAIL",
    ],
)
def test_a_rate_limit_that_does_not_parse_is_refused_at_start(name: str) -> None:
    # Accepted, "lots" was a 500 on every request it guarded; "ten a minute" on a credential
    # endpoint was no limit at all (flask-limiter logs and skips a limit it cannot read).
    for typo in ("lots", "ten a minute", "10 per fortnight"):
        with pytest.raises(ConfigError, match=name):
            get_config(environ={**PRODUCTION_ENV, name: typo})
    assert getattr(get_config(environ={**PRODUCTION_ENV, name: "5/minute; 50 per day"}), name) == "5/minute; 50 per day"


def test_a_malformed_setting_is_a_one_line_refusal_not_a_traceback() -> None:
    refused = {
        "REDIS_URL": ("http://cache.example:6379", "REDIS_URL must be a redis://"),
        "RATELIMIT_STORAGE_URI": ("http://limits.example", "RATELIMIT_STORAGE_URI must be"),
        "LOG_LEVEL": ("verbose", "LOG_LEVEL must be one of"),
        "CURRENCY": ("euro", "CURRENCY must be an ISO 4217 code"),
        "DATABASE_STATEMENT_TIMEOUT": ("-1", "DATABASE_STATEMENT_TIMEOUT"),
        "MIGRATION_LOCK_TIMEOUT": ("0", "MIGRATION_LOCK_TIMEOUT"),
    }
    for name, (value, message) in refused.items():
        with pytest.raises(ConfigError, match=message):
            get_config(environ={**PRODUCTION_ENV, name: value})
    for url in ("notaurl", "mysql://u:hunter2@db.example/shop", "oracle://db.example/shop"):
        with pytest.raises(ConfigError, match="DATABASE_URL must be a postgres:// or sqlite:///") as excinfo:
            get_config(environ={**PRODUCTION_ENV, "DATABASE_URL": url})
        assert "hunter2" not in str(excinfo.value)
    # What worked before these checks still does: every storage limits knows, every level
    # logging takes, a Redis on a socket (whose rate limits need limits' name for it).
    for uri in ("redis+unix:///run/redis.sock", "redis+sentinel://s.example:26379/main", "memcached://m.example"):
        assert uri == get_config(environ={**PRODUCTION_ENV, "RATELIMIT_STORAGE_URI": uri}).RATELIMIT_STORAGE_URI
    for level in ("warn", "Warning", "fatal", "debug"):
        assert level.upper() == get_config(environ={**PRODUCTION_ENV, "LOG_LEVEL": level}).LOG_LEVEL
    socket = get_config(environ={**PRODUCTION_ENV, "REDIS_URL": "unix:///run/redis.sock?db=2"})
    assert socket.RATELIMIT_STORAGE_URI == "redis+unix:///run/redis.sock?db=2"
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    env.update({**PRODUCTION_ENV, "REDIS_URL": "http://cache.example:6379", "FLASK_SKIP_DOTENV": "1"})
    proc = subprocess.run([sys.executable, "-c", "import wsgi"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 1
    assert "REDIS_URL must be a redis://" in proc.stderr and "Traceback" not in proc.stderr


def test_redis_tls_verification_can_be_turned_off_for_every_client() -> None:
    tls = {
        **PRODUCTION_ENV,
        "REDIS_URL": "rediss://:pw@ec2.example:6380",
        "CATALOG_CACHE_URL": "rediss://cache.example:6380/0",
        "RATELIMIT_STORAGE_URI": "rediss://limits.example:6380/1?socket_timeout=2",
    }
    verified = get_config(environ=tls)
    assert (tls["REDIS_URL"], tls["CATALOG_CACHE_URL"]) == (verified.REDIS_URL, verified.CATALOG_CACHE_URL)
    trusting = get_config(environ={**tls, "REDIS_TLS_VERIFY": "false"})
    assert trusting.REDIS_URL == "rediss://:pw@ec2.example:6380?ssl_cert_reqs=none"
    assert trusting.CATALOG_CACHE_URL == "rediss://cache.example:6380/0?ssl_cert_reqs=none"
    assert trusting.RATELIMIT_STORAGE_URI == "rediss://limits.example:6380/1?socket_timeout=2&ssl_cert_reqs=none"
    # Without a storage URI of their own, the rate limits use REDIS_URL as it now reads.
    assert get_config(environ={**tls, "RATELIMIT_STORAGE_URI": "", "REDIS_TLS_VERIFY": "0"}).RATELIMIT_STORAGE_URI == (
        "rediss://:pw@ec2.example:6380?ssl_cert_reqs=none"
    )
    # A URL that says how to verify, or one without TLS, is left as it is.
    told = {**tls, "REDIS_TLS_VERIFY": "false", "REDIS_URL": "rediss://ec2.example:6380?ssl_cert_reqs=required"}
    assert told["REDIS_URL"] == get_config(environ=told).REDIS_URL
    plain = {**tls, "REDIS_TLS_VERIFY": "false", "REDIS_URL": "redis://cache.example:6379/0"}
    assert plain["REDIS_URL"] == get_config(environ=plain).REDIS_URL


def test_database_errors_never_carry_the_values_of_their_statement() -> None:
    """A failed statement's message is logged and kept in a failed job's traceback: a
    registration's error carried the password hash and the address."""
    import sqlalchemy as sa

    config = DevelopmentConfig({"DATABASE_URL": "sqlite://"})
    engine = sa.create_engine(config.SQLALCHEMY_DATABASE_URI, **config.SQLALCHEMY_ENGINE_OPTIONS)  # type: ignore[arg-type]
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as excinfo:
        conn.execute(sa.text("INSERT INTO users (email) VALUES (:email)"), {"email": "secret-person@example.com"})
    assert "secret-person" not in str(excinfo.value)
    assert "parameters hidden" in str(excinfo.value)


# Every whole-number setting and the least value it takes (ARGON2_MEMORY_COST's: 8 KiB for
# each of the default 2 lanes). Each one below it once went on to a 500 or a silent misbehaviour
# at the first request it met (argon2's own check at the first hash; tokens expired at birth;
# every order refused as "0 unpaid orders"; every JSON body a 413; ProxyFix counting back).
WHOLE_NUMBER_FLOORS = {
    "DATABASE_CONNECT_TIMEOUT": 1,
    "DATABASE_STATEMENT_TIMEOUT": 0,
    "MIGRATION_LOCK_TIMEOUT": 1,
    "MIGRATION_LOCK_ATTEMPTS": 1,
    "WORKER_SHUTDOWN_GRACE_SECONDS": 1,
    "CLOCK_LOCK_SECONDS": 3,
    "STORAGE_TIMEOUT": 1,
    "UPLOAD_IMAGE_MAX_BYTES": 1,
    "UPLOAD_IMPORT_MAX_BYTES": 1,
    "UPLOAD_TARGET_SECONDS": 1,
    "UPLOAD_DOWNLOAD_SECONDS": 1,
    "UPLOAD_EXPIRE_HOURS": 1,
    "IMPORT_MAX_ROWS": 1,
    "IMPORT_BATCH_SIZE": 1,
    "IMPORT_JOB_TIMEOUT": 1,
    "PORT": 1,
    "MAX_CONTENT_LENGTH": 1,
    "MAX_JSON_BYTES": 1,
    "PROXY_FIX_X_FOR": 0,
    "HSTS_SECONDS": 0,
    "IDEMPOTENCY_KEY_HOURS": 1,
    "ORDER_PAYMENT_MINUTES": 1,
    "ORDER_MAX_PENDING": 1,
    "CATALOG_CACHE_TTL": 1,
    "JWT_ACCESS_TOKEN_SECONDS": 1,
    "JWT_REFRESH_TOKEN_SECONDS": 1,
    "REFRESH_REUSE_GRACE_SECONDS": 0,
    "SESSION_MAX_SECONDS": 1,
    "RETENTION_SECONDS": 1,
    "ARGON2_TIME_COST": 1,
    "ARGON2_PARALLELISM": 1,
    "ARGON2_MEMORY_COST": 16,
    "LOGIN_MAX_FAILURES": 1,
    "ADMIN_SESSION_SECONDS": 1,
    "LOGIN_LOCKOUT_SECONDS": 1,
    "VERIFY_TOKEN_SECONDS": 1,
    "RESET_TOKEN_SECONDS": 1,
}


def test_every_whole_number_setting_has_its_floor_here() -> None:
    read = set(re.findall(r'(?:whole_number|_seconds)\(\s*env,\s*"([A-Z0-9_]+)"', (ROOT / "config.py").read_text()))
    assert read == set(WHOLE_NUMBER_FLOORS)


@pytest.mark.parametrize(("name", "floor"), WHOLE_NUMBER_FLOORS.items())
def test_a_whole_number_setting_below_its_floor_stops_the_start(name: str, floor: int) -> None:
    for config in (DevelopmentConfig, ProductionConfig):
        env = dict(PRODUCTION_ENV) if config is ProductionConfig else {}
        if name == "RESET_TOKEN_SECONDS":  # a link must outlive the recovery mails' windows
            env["RATELIMIT_RECOVERY_MAIL"] = "1 per second"
        with pytest.raises(ConfigError, match=rf"^{name} must be at least {floor}\b.*, got {floor - 1}$"):
            config({**env, name: str(floor - 1)})
        with pytest.raises(ConfigError, match=rf"^{name} must be an integer, got 'soon'$"):
            config({**env, name: "soon"})
        config({**env, name: str(floor)})  # the floor itself is taken


def test_argon2_memory_follows_the_lanes_and_the_clock_lock_is_seconds() -> None:
    assert DevelopmentConfig({"ARGON2_PARALLELISM": "4", "ARGON2_MEMORY_COST": "32"}).ARGON2_MEMORY_COST == 32
    with pytest.raises(ConfigError, match=r"ARGON2_MEMORY_COST must be at least 32 \(KiB\), got 31"):
        DevelopmentConfig({"ARGON2_PARALLELISM": "4", "ARGON2_MEMORY_COST": "31"})
    defaults = DevelopmentConfig({})
    assert (defaults.WORKER_SHUTDOWN_GRACE_SECONDS, defaults.CLOCK_LOCK_SECONDS) == (25, 45)
    with pytest.raises(ConfigError, match=r"CLOCK_LOCK_SECONDS must be at least 3 \(seconds\), got 2"):
        DevelopmentConfig({"CLOCK_LOCK_SECONDS": "2"})


def test_a_setting_past_what_its_consumer_takes_stops_the_start() -> None:
    """PostgreSQL's timeouts are milliseconds in 32 bits: a larger one failed every web
    connection's SET; a port past 65535 failed at bind."""
    for name, largest in (
        ("DATABASE_STATEMENT_TIMEOUT", 2_147_483),
        ("MIGRATION_LOCK_TIMEOUT", 2_147_483),
        ("PORT", 65535),
    ):
        DevelopmentConfig({name: str(largest)})
        with pytest.raises(ConfigError, match=rf"^{name} must be at most {largest}\b.*, got {largest + 1}$"):
            DevelopmentConfig({name: str(largest + 1)})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be at least 1 (processes), got 0"),
        ("GUNICORN_THREADS", "many", "GUNICORN_THREADS must be an integer, got 'many'"),
        ("GUNICORN_TIMEOUT", "-1", "GUNICORN_TIMEOUT must be at least 0 (seconds), got -1"),
        ("PORT", "80000", "PORT must be at most 65535, got 80000"),
    ],
)
def test_gunicorns_own_settings_are_refused_in_one_line(name: str, value: str, message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "WEB_CONCURRENCY")}
    env.update({name: value, "FLASK_SKIP_DOTENV": "1"})
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "-c", "gunicorn.conf.py", "--check-config", "wsgi:app"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"storefront: {message}", proc.stderr
