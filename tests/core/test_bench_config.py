"""The bench starts the app in production mode: that configuration must stay valid (the
bench itself is not part of the suite, it takes minutes)."""

from __future__ import annotations

from app.extensions import QUEUE_NAMES
from app.products.transfer.service import IMPORT_QUEUE
from bench import harness
from config import ProductionConfig


def test_the_bench_environment_is_a_valid_production_config() -> None:
    config = ProductionConfig(harness.app_environment())
    assert config.RATELIMIT_ENABLED is False
    assert config.SQLALCHEMY_DATABASE_URI.startswith("postgresql+psycopg://")


def test_the_bench_worker_takes_import_jobs_from_the_bench_redis() -> None:
    # ``python worker.py`` runs in the same environment as the app (``Context.worker``);
    # without REDIS_URL it would exit at once, and the imports bench waits on its queue.
    # (Config only: a second app here would re-initialise the suite's shared extensions.)
    config = ProductionConfig(harness.app_environment())
    assert config.REDIS_URL == harness.REDIS_URL
    assert IMPORT_QUEUE in QUEUE_NAMES
    # The API stores the file, the worker reads it: one disk, both allowed to use it.
    assert config.STORAGE_URL.startswith("file://")
