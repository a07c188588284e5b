"""The bench starts the app in production mode: that configuration must stay valid (the
bench itself is not part of the suite, it takes minutes)."""

from __future__ import annotations

from bench import harness
from config import ProductionConfig


def test_the_bench_environment_is_a_valid_production_config() -> None:
    config = ProductionConfig(harness.app_environment())
    assert config.RATELIMIT_ENABLED is False
    assert config.SQLALCHEMY_DATABASE_URI.startswith("postgresql+psycopg://")
