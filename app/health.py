"""Operations endpoints outside /api/v1: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.db import db
from app.errors import NotFound, Unauthorized
from app.extensions import limiter, redis_queues
from app.observability import metrics_registry

bp = Blueprint("health", __name__)
NOT_CONFIGURED = "not configured (in-process)"


def _check(probe: Callable[[], object]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        probe()
    except (SQLAlchemyError, RedisError, OSError) as exc:
        return {
            "status": "fail",
            "error": type(exc).__name__,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _ping_database() -> None:
    try:
        db.session.execute(sa.text("SELECT 1"))
    finally:
        db.session.rollback()


def _ping_redis() -> None:
    redis_queues.connection.ping()


def _ping_catalog_cache() -> None:
    redis_queues.catalog_cache.ping()


@bp.get("/health/live")
@limiter.exempt
def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@bp.get("/health/ready")
@limiter.exempt
def ready() -> tuple[dict[str, Any], int]:
    """Every dependency answers: 200, else 503 naming the failing check. A catalog cache of
    its own (``CATALOG_CACHE_URL``) is checked too, but its failure is not: catalog reads
    then go to the database."""
    checks = {
        "database": _check(_ping_database),
        # REDIS_URL unset: pinging the in-process stand-in would prove nothing.
        "redis": {"status": NOT_CONFIGURED} if redis_queues.in_process else _check(_ping_redis),
    }
    healthy = all(c["status"] in {"ok", NOT_CONFIGURED} for c in checks.values())
    if redis_queues.separate_catalog_cache:
        checks["catalog_cache"] = _check(_ping_catalog_cache)
    return {"status": "ok" if healthy else "unavailable", "checks": checks}, 200 if healthy else 503


def _check_metrics_token() -> None:
    """With ``METRICS_TOKEN`` set, only ``Authorization: Bearer <it>`` reads the metrics; in
    production without one, there are no metrics to read (404)."""
    expected: str | None = current_app.config["METRICS_TOKEN"]
    if expected is None:
        if current_app.config["ENV_NAME"] == "production":
            raise NotFound()
        return
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected.encode()):
        raise Unauthorized("Send the metrics token as a Bearer token", headers={"WWW-Authenticate": "Bearer"})


@bp.get("/metrics")
@limiter.exempt
def metrics() -> Response:
    """Prometheus text exposition."""
    _check_metrics_token()
    # content_type, not mimetype: CONTENT_TYPE_LATEST already names its charset.
    return Response(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
