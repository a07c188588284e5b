"""Fixtures shared by the whole suite.

Two modes, one suite:
- default (``make test``): SQLite file, in-process Redis stand-in, jobs run in-process;
- services (``make test-services``, ``TEST_SERVICES=1``): PostgreSQL at
  ``TEST_DATABASE_URL`` and Redis at ``TEST_REDIS_URL``, jobs through a real RQ worker.
  An unreachable service fails the run; it is never skipped.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from rq import SimpleWorker

from app import create_app
from app.db import db
from app.extensions import limiter, redis_queues
from config import TestingConfig
from tests.factories import AuthedUser, create_user
from tests.support import widgets
from tests.support.mailbox import Mailbox

SERVICES = os.environ.get("TEST_SERVICES") == "1"
# The processes tests start (gunicorn, worker.py, flask) get the environment a test gives
# them, never a developer's .env (make run writes one) filled in behind it.
os.environ.setdefault("FLASK_SKIP_DOTENV", "1")
# Each run gets its own SQLite file, so that parallel runs never share a database.
os.environ.setdefault("STOREFRONT_TEST_SQLITE", os.path.join(tempfile.mkdtemp(prefix="storefront-"), "test.db"))
# Uploads go to a folder of this run, never instance/ (tests of uploads swap in their own).
os.environ.setdefault("STOREFRONT_TEST_STORAGE", tempfile.mkdtemp(prefix="storefront-uploads-"))
DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def _service_environ() -> dict[str, str]:
    env = dict(os.environ)
    env["APP_ENV"] = "testing"
    env.setdefault("STORAGE_URL", "file://" + os.environ["STOREFRONT_TEST_STORAGE"])
    if SERVICES:
        env.setdefault("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
        env.setdefault("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    else:
        env["TEST_DATABASE_URL"] = "sqlite:///" + os.environ["STOREFRONT_TEST_SQLITE"]
        env.pop("TEST_REDIS_URL", None)
    return env


def _require_services(env: dict[str, str]) -> None:
    """In the services run, an unreachable PostgreSQL or Redis is a failure, not a skip."""
    try:
        engine = sa.create_engine(env["TEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        pytest.exit(f"PostgreSQL unreachable at {env['TEST_DATABASE_URL']}: {exc}", returncode=3)
    try:
        redis.Redis.from_url(env["TEST_REDIS_URL"], socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.exit(f"Redis unreachable at {env['TEST_REDIS_URL']}: {exc}", returncode=3)


def _reset_schema(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                conn.execute(sa.text("CREATE SCHEMA public"))
        else:
            db.engine.dispose()
            database = db.engine.url.database
            for suffix in ("", "-wal", "-shm"):
                if database and os.path.exists(database + suffix):
                    os.remove(database + suffix)
        upgrade()
        widgets.TestBase.metadata.create_all(db.engine)


def build_app(**environ_overrides: str) -> Flask:
    env = _service_environ()
    env.update(environ_overrides)
    app = create_app(TestingConfig(env))
    from app.extensions import api

    api.register_blueprint(widgets.blp)
    return app


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server on loopback: the app's mail goes there over SMTP."""
    mailbox = Mailbox()
    mailbox.start()
    yield mailbox
    mailbox.stop()


@pytest.fixture(scope="session")
def app(smtp_server: Mailbox) -> Iterator[Flask]:
    env = _service_environ()
    if SERVICES:
        _require_services(env)
    application = build_app(MAIL_URL=smtp_server.url)
    _reset_schema(application)
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def mailbox(smtp_server: Mailbox) -> Mailbox:
    smtp_server.clear()
    return smtp_server


def _clean(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        tables = [*reversed(db.metadata.sorted_tables), *widgets.TestBase.metadata.sorted_tables]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                if names:
                    conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(table.delete())
        redis_queues.connection.flushdb()
        limiter.reset()


@pytest.fixture(autouse=True)
def _isolate(app: Flask) -> Iterator[None]:
    """Every test starts from empty tables, an empty Redis and fresh rate limits."""
    _clean(app)
    yield
    _catalog_changes_published()
    _clean(app)


def _catalog_changes_published() -> None:
    """A test that cut Redis off leaves the catalog's unpublished changes to the retry
    (app.products.cache._Unpublished): wait for it, so the next test reads its cache."""
    from app.products import cache

    deadline = time.monotonic() + 10
    while cache._unpublished.pending:
        assert time.monotonic() < deadline, "catalog changes still unpublished 10 s after the test"
        time.sleep(0.05)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def staff(app: Flask) -> AuthedUser:
    return create_user(app, role="staff")


@pytest.fixture
def admin(app: Flask) -> AuthedUser:
    return create_user(app, role="admin")


@pytest.fixture
def customer(app: Flask) -> AuthedUser:
    return create_user(app, role="customer")


@pytest.fixture
def app_ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture
def run_jobs(app: Flask) -> Callable[[], int]:
    """Process queued jobs: a real RQ worker (burst) against Redis in the services run.

    In the embedded mode jobs already ran in-process when they were enqueued; only jobs
    queued behind the app's back (the clock's) wait there, and the same worker runs them.
    Returns how many jobs the worker processed.
    """

    def run() -> int:
        with app.app_context():
            worker = SimpleWorker(redis_queues.all_queues(), connection=redis_queues.connection)
            worker.work(burst=True, with_scheduler=False)
            return int(worker.successful_job_count + worker.failed_job_count)

    return run


# PUBLIC_BASE_URL is unset in the tests: absolute URLs then use the address served, which
# for Flask's test client is this.
SERVED_BASE_URL = "http://localhost"


def json_of(response: Any) -> Any:
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)
    return body


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``services`` tests need a real worker process and Redis: they run in the services
    run only. That run skips nothing."""
    if SERVICES:
        return
    skip = pytest.mark.skip(reason="needs real PostgreSQL/Redis: runs in make test-services")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The services run must not pass with anything skipped."""
    if not SERVICES:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == 0:
        print(f"\nservices run: {len(skipped)} test(s) skipped; every test must run here")
        session.exitstatus = 1
