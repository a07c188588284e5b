"""Extension objects, unbound: ``create_app`` binds them to an application."""

from __future__ import annotations

from dataclasses import dataclass

import fakeredis
import redis
from flask import Flask, current_app
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from rq import Queue

from app.api import Api
from app.db import db
from app.ratelimits import Limiter, client_key, default_limit

__all__ = ["api", "cors", "db", "jwt", "limiter", "migrate", "redis_queues"]

# In the order a worker takes jobs from them: the clock's short periodic jobs (the expiry
# of unpaid orders among them) first, so that no backlog of mail or imports holds them up.
QUEUE_NAMES = ("housekeeping", "mail", "imports", "media")


@dataclass
class RedisState:
    connection: redis.Redis
    queues: dict[str, Queue]
    in_process: bool
    catalog_cache: redis.Redis


def _connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


class RedisQueues:
    """The Redis connections: the app's (queues, JWT blocklist) with its RQ queues, and the
    catalog cache's.

    With ``REDIS_URL`` unset (the embedded default) the connection is an in-process
    stand-in (fakeredis) and the queues run each job in-process when it is enqueued, so
    a laptop needs no Redis; with it set, jobs go to real workers. Nothing else changes.
    The catalog cache uses the same connection unless ``CATALOG_CACHE_URL`` names another
    Redis (``separate_catalog_cache``).
    """

    key = "storefront.redis"

    def init_app(self, app: Flask) -> None:
        url: str | None = app.config.get("REDIS_URL")
        connection: redis.Redis = _connect(url) if url else fakeredis.FakeRedis()
        queues = {name: Queue(name, connection=connection, is_async=bool(url)) for name in QUEUE_NAMES}
        cache_url: str | None = app.config.get("CATALOG_CACHE_URL")
        # The same connection when it is the same Redis: the cache's writes after a commit
        # then go in the jobs' round trip.
        catalog_cache = _connect(cache_url) if cache_url and cache_url != url else connection
        app.extensions[self.key] = RedisState(
            connection=connection, queues=queues, in_process=not url, catalog_cache=catalog_cache
        )

    @property
    def _state(self) -> RedisState:
        state: RedisState = current_app.extensions[self.key]
        return state

    @property
    def connection(self) -> redis.Redis:
        return self._state.connection

    @property
    def in_process(self) -> bool:
        return self._state.in_process

    @property
    def catalog_cache(self) -> redis.Redis:
        """The catalog cache's Redis (``CATALOG_CACHE_URL``, else the app's)."""
        return self._state.catalog_cache

    @property
    def separate_catalog_cache(self) -> bool:
        return self._state.catalog_cache is not self._state.connection

    def queue(self, name: str) -> Queue:
        return self._state.queues[name]

    def all_queues(self) -> list[Queue]:
        return list(self._state.queues.values())


api = Api()
cors = CORS()
jwt = JWTManager()
limiter = Limiter(key_func=client_key, default_limits=[default_limit])
migrate = Migrate()
redis_queues = RedisQueues()
