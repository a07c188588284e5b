"""Request ids, one JSON log line per request, and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, g, has_app_context, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from rq import Queue, Worker

from app.extensions import redis_queues
from app.jobs import current_job_id

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
METRICS_KEY = "storefront.metrics"

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class ContextFilter(logging.Filter):
    """Stamp every record with the request id, user id and RQ job id when known."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id")
            user_id = g.get("user_id")
            if user_id is not None:
                record.user_id = str(user_id)
        job_id = current_job_id()
        if job_id is not None:
            record.job_id = job_id
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class DevServerFilter(logging.Filter):
    """The development server's own output: its request lines go (the app already writes
    one JSON access line per request), the rest (the banner, errors) stays, minus the
    terminal colour codes that would otherwise end up inside a log line."""

    _ANSI = re.compile(r"\x1b\[[0-9;]*m")
    _REQUEST_LINE = '"%s" %s %s'  # werkzeug's WSGIRequestHandler.log_request

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.rstrip().endswith(self._REQUEST_LINE):
            return False
        record.msg, record.args = self._ANSI.sub("", record.getMessage()), None
        return True


def configure_logging(level: str) -> None:
    """One JSON line per record on stdout (the platform collects stdout)."""
    # The JSON lines name no source file, thread or process name: records need not look
    # them up, at a cost paid on every request (the logging HOWTO's "Optimization"
    # settings). The process id stays: gunicorn's own log lines print it (``[%(process)d]``
    # in its error format), and without it every line a worker logs once the app is
    # loaded ("Worker exiting") fails to format.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_storefront", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JSONFormatter())
        handler.addFilter(ContextFilter())
        handler._storefront = True  # type: ignore[attr-defined]  # marker so repeated app builds add one handler
        root.addHandler(handler)
    dev_server = logging.getLogger("werkzeug")
    if not any(getattr(h, "_storefront", False) for h in dev_server.handlers):
        plain = logging.StreamHandler(sys.stderr)
        plain.setFormatter(logging.Formatter("%(message)s"))
        plain.addFilter(DevServerFilter())
        plain._storefront = True  # type: ignore[attr-defined]  # as above
        dev_server.addHandler(plain)
        dev_server.setLevel(logging.INFO)
        dev_server.propagate = False


class QueueDepthCollector(Collector):
    """Whether Redis answers, and per RQ queue the jobs waiting, the jobs failed and the
    workers serving it, read from Redis at scrape time.

    Read from Redis, not counted in-process, so every web process reports the same
    figures and nothing needs aggregating across gunicorn workers. ``redis_up`` is always
    there; while it is 0 the ``rq_*`` series are absent (there is nothing to read them
    from), so alerts on them must also fire on ``redis_up == 0``.
    """

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("redis_up", "1 when the queues' Redis answered this scrape, else 0")
        depth = GaugeMetricFamily("rq_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        failed = GaugeMetricFamily(
            "rq_failed_jobs", "Jobs in each RQ queue's failed registry (kept 30 days)", labels=["queue"]
        )
        workers = GaugeMetricFamily("rq_workers", "Live RQ workers serving each queue", labels=["queue"])
        if has_app_context():
            try:
                figures = [(queue.name, *_queue_figures(queue)) for queue in redis_queues.all_queues()]
            except RedisError:
                up.add_metric([], 0.0)
            else:
                up.add_metric([], 1.0)
                for name, waiting, failures, serving in figures:
                    depth.add_metric([name], float(waiting))
                    failed.add_metric([name], float(failures))
                    workers.add_metric([name], float(serving))
            yield up
        yield depth
        yield failed
        yield workers


def _queue_figures(queue: Queue) -> tuple[int, int, int]:
    """Jobs waiting, jobs failed, and workers alive (a worker's key expires ``worker_ttl``
    after its last heartbeat, while its name stays in the queue's set until another
    worker's maintenance cleans it: a killed worker stops counting within that TTL)."""
    keys = Worker.all_keys(connection=queue.connection, queue=queue)
    with queue.connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.exists(key)
        alive = sum(1 for found in pipe.execute() if found)
    return queue.count, queue.failed_job_registry.count, alive


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by endpoint, method and status",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by endpoint, method and status",
            ["method", "endpoint", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.ratelimit_storage_errors = Counter(
            "ratelimit_storage_errors_total",
            "Requests whose rate limit could not be checked (storage unreachable), by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.queue_depth = QueueDepthCollector()
        self.registry.register(self.queue_depth)
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def series(self, method: str, endpoint: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram of one (method, endpoint, status),
        looked up once per process (``labels`` takes a lock and builds a key each call)."""
        key = (method, endpoint, status)
        found = self._series.get(key)
        if found is None:
            labels = (method, endpoint, str(status))
            found = self._series[key] = (self.requests.labels(*labels), self.latency.labels(*labels))
        return found

    def scrape_registry(self) -> CollectorRegistry:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # gunicorn with several workers: aggregate every worker's samples.
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
            registry.register(self.queue_depth)
            return registry
        return self.registry


def _new_request_id() -> str:
    return os.urandom(16).hex()  # a uuid4's randomness, without building a UUID


def _before_request() -> None:
    g.started_at = time.perf_counter()
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else _new_request_id()


_ACCESS_LOG = logging.getLogger("storefront.access")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _after_request(response: Response) -> Response:
    request_id = g.get("request_id") or _new_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("started_at")
    duration = time.perf_counter() - started if started is not None else 0.0
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "<unmatched>"
    method, path, status = request.method, request.path, response.status_code

    metrics: Metrics = current_app.extensions[METRICS_KEY]
    # Any client can send any method: label only the standard ones (bounded series).
    requests, latency = metrics.series(method if method in _METHODS else "OTHER", endpoint, status)
    requests.inc()
    latency.observe(duration)

    _ACCESS_LOG.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "remote_addr": request.remote_addr,
            "pid": os.getpid(),
        },
    )
    return response


def init_observability(app: Flask) -> None:
    app.extensions[METRICS_KEY] = Metrics()
    app.before_request(_before_request)
    app.after_request(_after_request)


def metrics_registry() -> CollectorRegistry:
    metrics: Metrics = current_app.extensions[METRICS_KEY]
    return metrics.scrape_registry()
