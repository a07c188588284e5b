"""The bench starts the app in production mode: that configuration must stay valid (the
bench itself is not part of the suite, it takes minutes)."""

from __future__ import annotations

from app import create_app
from app.extensions import redis_queues
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
    app = create_app(ProductionConfig(harness.app_environment()))
    with app.app_context():
        assert app.config["REDIS_URL"] == harness.REDIS_URL
        assert not redis_queues.in_process
        assert IMPORT_QUEUE in {queue.name for queue in redis_queues.all_queues()}
        # The API stores the file, the worker reads it: one disk, both allowed to use it.
        assert app.config["STORAGE_URL"].startswith("file://")
