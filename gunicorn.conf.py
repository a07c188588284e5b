"""gunicorn settings, read from the environment the platform provides.

Metrics across workers: every worker is its own process, so Prometheus counters live in
per-process files under ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them. The
master prepares that folder before any worker starts (a fresh temporary one when the
operator set none, emptied when they did: files of an earlier run would be counted
again), and drops the files of workers that die.
"""

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from config import ConfigError, load_local_env, whole_number

# A .env file (local use) is read as `flask` commands read it; the environment wins.
load_local_env()

try:
    port = whole_number(os.environ, "PORT", 5000, at_least=1, at_most=65535)
    workers = whole_number(os.environ, "WEB_CONCURRENCY", 2, at_least=1, unit="processes")
    threads = whole_number(os.environ, "GUNICORN_THREADS", 4, at_least=1, unit="threads")
    # 0: no timeout (gunicorn's meaning).
    timeout = whole_number(os.environ, "GUNICORN_TIMEOUT", 30, at_least=0, unit="seconds")
except ConfigError as exc:  # one line, as the app's own settings refuse (not gunicorn's traceback)
    print(f"storefront: {exc}", file=sys.stderr)
    sys.exit(1)
bind = f"0.0.0.0:{port}"
worker_class = "gthread"
graceful_timeout = 20
keepalive = 5
# One listening socket shared by the workers (no reuse_port): with a socket per worker the
# kernel would spread connections evenly, but it resets the connections waiting on a worker's
# socket when that worker dies or restarts (tests/core/test_metrics_gunicorn.py saw it). The
# price of sharing: a burst of keep-alive connections may land unevenly on the workers (the
# bench reports the split of each of its runs: README, "Benchmarks").
# Logs go to stdout/stderr; the app writes its own JSON access line per request.
accesslog = None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The platform steers processes with signals. gunicorn's control socket (one path per
# user by default) would be shared, and fought over, by every gunicorn of that user.
control_socket_disable = True

_created_multiproc_dir: str | None = None


def on_starting(server):  # type: ignore[no-untyped-def]
    """Before the first worker forks (and before the app is imported anywhere)."""
    global _created_multiproc_dir
    from config import ConfigError, get_config

    try:
        config = get_config()
    except ConfigError as exc:  # one line, once: not a traceback per worker, then "failed to boot"
        server.log.error("storefront: %s", exc)
        raise SystemExit(1) from None
    # Outside production a missing secret is random per process: made here, in the master,
    # every worker shares it (else a token signed by one worker is refused by the others).
    if config.ENV_NAME != "production":
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            if not os.environ.get(name):
                os.environ[name] = secrets.token_urlsafe(48)
                server.log.warning("storefront: %s is not set: a random one for this run (tokens end with it)", name)
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
    else:
        _created_multiproc_dir = tempfile.mkdtemp(prefix="storefront-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _created_multiproc_dir
    server.log.info("Prometheus multiprocess folder: %s", os.environ["PROMETHEUS_MULTIPROC_DIR"])


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """The app is loaded in this worker: gunicorn's own error answers become the app's
    envelope (``app.server_errors``), and what the app built at start lives as long as the
    worker.

    Moved to the collector's permanent generation, those objects (about 170,000) are no
    longer traversed by each full collection, which otherwise stalls every thread of the
    worker for over 100 ms now and then: the tail latency of every endpoint.
    """
    import gc

    # What gunicorn refuses itself (a request line too long, headers too large, bytes not
    # allowed in a request line) gets the API's JSON envelope, not gunicorn's HTML page:
    # for this project's app (``create_app`` names it "app"), not another one served with
    # this file (the bench's peers).
    if getattr(worker.wsgi, "import_name", None) == "app":
        import gunicorn.util

        from app.db import bound_statements
        from app.server_errors import gunicorn_error_writer

        gunicorn.util.write_error = gunicorn_error_writer(worker.wsgi)
        # Requests, and only requests, are bounded by DATABASE_STATEMENT_TIMEOUT.
        bound_statements(worker.wsgi)

    gc.collect()
    gc.freeze()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A dead worker's live gauges go; its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    if _created_multiproc_dir:
        shutil.rmtree(_created_multiproc_dir, ignore_errors=True)
