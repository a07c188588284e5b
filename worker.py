"""The RQ worker process (the Procfile's ``worker``): ``python worker.py [--burst]``.

Builds the application once and pushes one application context, then runs an RQ worker
(with its scheduler, so that retries with backoff happen) on the ``housekeeping``, ``mail``,
``imports`` and ``media`` queues, in that order (``--queues`` names fewer: a worker of its own
for ``housekeeping,mail`` keeps them moving while long imports run). Each job forks from this
process, so the app is imported before any job runs.

On SIGTERM (a platform signals every process, the work horse included) the job in
progress has ``WORKER_SHUTDOWN_GRACE_SECONDS`` to finish; past them it fails through RQ's
failure handling, so that its retry applies (``StorefrontWorker``).

``python worker.py --cron`` is the Procfile's ``clock`` instead: it enqueues the periodic
jobs of ``app.schedule`` (the mail relay, the uploads upkeep) for the workers to run. Only
the clock holding the clock lock in Redis schedules; another one waits to take over.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import signal
import sys
import threading
import time
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import StopRequested
from rq.job import Job
from rq.worker import HerokuWorker

from app import create_app
from app.extensions import QUEUE_NAMES, db, redis_queues
from app.jobs import record_last_error
from app.schedule import CLOCK_LOCK_SECONDS, ClockLockLost, build_scheduler
from config import ConfigError, load_local_env

log = logging.getLogger("storefront.worker")

MAINTENANCE_SECONDS = 60
REDIS_RETRY_FIRST_SECONDS = 2
REDIS_RETRY_MAX_SECONDS = 30
SHUTDOWN_GRACE_SECONDS = 25  # config.py's default of WORKER_SHUTDOWN_GRACE_SECONDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an RQ worker for the Storefront queues.")
    parser.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    parser.add_argument("--name", default=None, help="worker name (default: generated)")
    parser.add_argument("--cron", action="store_true", help="run the periodic-job clock instead of a worker")
    parser.add_argument(
        "--queues",
        default=None,
        help=f"comma-separated queues to serve, in order (default: all: {','.join(QUEUE_NAMES)})",
    )
    args = parser.parse_args(argv)
    queue_names = _queue_names(parser, args.queues)

    load_local_env()
    try:
        app = create_app()
    except ConfigError as exc:  # its message says it all: no traceback around it
        print(f"storefront: {exc}", file=sys.stderr)
        return 1
    with app.app_context():
        if redis_queues.in_process:
            print(
                "REDIS_URL is not set: jobs run in-process inside the web application, "
                "so there is nothing for a worker to do. Set REDIS_URL to use real workers."
            )
            return 0
        wait_for_redis(redis_queues.connection)
        if args.cron:
            return run_clock(
                redis_queues.connection,
                logging_level=app.config["LOG_LEVEL"],
                lock_seconds=app.config["CLOCK_LOCK_SECONDS"],
            )
        # Work horses are forked from here: they must not share the parent's sockets.
        db.engine.dispose()
        queues = [redis_queues.queue(name) for name in queue_names]
        for run in itertools.count():
            # A worker's name is its key in Redis: after an outage the old one may linger there
            # until it expires, so a worker started again takes a name of its own.
            name = args.name if run == 0 or args.name is None else f"{args.name}.{run}"
            worker = build_worker(
                queues,
                redis_queues.connection,
                name=name,
                shutdown_grace=app.config["WORKER_SHUTDOWN_GRACE_SECONDS"],
            )
            log.info("worker starting", extra={"queues": worker.queue_names(), "burst": args.burst})
            try:
                worker.work(burst=args.burst, with_scheduler=True, logging_level=app.config["LOG_LEVEL"])
            except RedisError as exc:  # RQ's teardown records the worker's end in Redis
                log.warning("worker: Redis failed as the worker stopped (%s)", exc)
                _stop_listening(worker)
            if args.burst or worker.stop_requested:
                return 0
            # RQ's loop quits on any error it does not expect: Redis failing over while a job
            # ran (recording the job's progress or outcome failed) is one. The job's own
            # process goes on and records its outcome if Redis is back by then; if not, RQ
            # finds the job abandoned and retries it. This process serves again once Redis
            # answers, rather than exiting (a platform may wait minutes before restarting a
            # crashed process; honcho stops every process with it).
            delay = min(REDIS_RETRY_MAX_SECONDS, REDIS_RETRY_FIRST_SECONDS * 2**run)
            log.warning("worker: its loop stopped on an error (logged above); serving again in %d s", delay)
            time.sleep(delay)
            wait_for_redis(redis_queues.connection)
    return 0


def _queue_names(parser: argparse.ArgumentParser, given: str | None) -> list[str]:
    if given is None:
        return list(QUEUE_NAMES)
    names = [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUE_NAMES]
    if not names or unknown:
        parser.error(f"--queues takes names of {', '.join(QUEUE_NAMES)} (got {given!r})")
    return names


class StorefrontWorker(HerokuWorker):
    """RQ's ``HerokuWorker``: a platform's SIGTERM to every process (Heroku signals the whole
    dyno, then SIGKILLs it 30 s later) leaves the work horse alone. The worker's own SIGTERM
    asks for a warm shutdown: it sends the horse SIGRTMIN, and the job in progress has
    ``imminent_shutdown_delay`` seconds to finish. Past them the horse raises
    ``ShutDownImminentException`` in the job, which RQ's failure handling records (its
    ``Retry`` schedules it again): it fails visibly, it is never lost.

    One change to HerokuWorker: it counts those seconds with ``signal.alarm``, which would
    replace the alarm of the job's own timeout (RQ's death penalty uses SIGALRM as well), or
    be replaced by it when the job starts after the signal. A timer thread counts them here
    and sends the horse's main thread the second SIGRTMIN, which HerokuWorker's handler
    turns into the exception; the job's timeout keeps its alarm, whichever ends first."""

    imminent_shutdown_delay = SHUTDOWN_GRACE_SECONDS
    stop_requested = False  # a warm shutdown was asked for (SIGTERM, SIGINT): do not start again
    _job_ended = False
    _shutdown_timer: threading.Timer | None = None

    def handle_warm_shutdown_request(self) -> None:
        self.stop_requested = True
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]  # rq leaves it unannotated

    def request_stop_sigrtmin(self, signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGRTMIN, self.request_force_stop_sigrtmin)  # the next SIGRTMIN raises
        if self._job_ended:  # only RQ's bookkeeping is left: let it finish
            return
        self.log.warning(
            "shutdown: the job in progress has %d s to finish, then it fails (and is retried)",
            self.imminent_shutdown_delay,
        )
        main = threading.main_thread().ident
        assert main is not None
        timer = threading.Timer(self.imminent_shutdown_delay, signal.pthread_kill, args=(main, signal.SIGRTMIN))
        timer.daemon = True
        timer.start()
        self._shutdown_timer = timer

    def request_force_stop_sigrtmin(self, signum: int, frame: FrameType | None) -> None:
        # A timer that fired as the job ended: RQ is recording its outcome, leave it be.
        if self._job_ended:
            return
        super().request_force_stop_sigrtmin(signum, frame)  # type: ignore[no-untyped-call]  # rq leaves it unannotated

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """The job function returned or raised: RQ records how, undisturbed by the timer."""
        self._job_ended = True
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
        super().handle_execution_ended(job, queue, heartbeat_ttl)


def _stop_listening(worker: StorefrontWorker) -> None:
    """End the thread of the worker's command channel, which RQ's teardown would have ended
    after the step that failed (it needs no Redis to stop)."""
    thread = getattr(worker, "pubsub_thread", None)
    if thread is not None:
        thread.stop()
        thread.join(timeout=1)


def build_worker(
    queues: list[Queue],
    connection: Redis,
    *,
    name: str | None = None,
    shutdown_grace: int = SHUTDOWN_GRACE_SECONDS,
) -> StorefrontWorker:
    """An RQ worker that looks after itself every ``MAINTENANCE_SECONDS``: RQ restarts its
    scheduler process (which a Redis outage kills, and which retries with backoff need) and
    finds the jobs of dead workers only in its maintenance, which by default comes every 10
    minutes and waits for a dequeue that blocks up to 405 s. On SIGTERM the job in progress
    has ``shutdown_grace`` seconds to finish (``StorefrontWorker``)."""
    worker = StorefrontWorker(
        queues,
        connection=connection,
        name=name,
        maintenance_interval=MAINTENANCE_SECONDS,
        worker_ttl=MAINTENANCE_SECONDS + 15,  # its blocking dequeue returns within MAINTENANCE_SECONDS
        # A failed job's last error in its meta: the dashboard shows it while the job waits
        # for its retry (RQ keeps the exception only once the job has failed for good).
        exception_handlers=[record_last_error],
    )
    worker.imminent_shutdown_delay = shutdown_grace
    return worker


def wait_for_redis(connection: Redis) -> None:
    """Return once Redis answers: a platform starts processes in any order, and Redis may
    be failing over. One log line per try, not a traceback and an exit."""
    for attempt in itertools.count():
        try:
            connection.ping()
            return
        except RedisError as exc:
            delay = min(REDIS_RETRY_MAX_SECONDS, 2**attempt)
            # A certificate nobody vouches for will not change by waiting: say what to set.
            hint = " (a self-signed certificate, as Heroku Redis's: set REDIS_TLS_VERIFY=false)"
            hint = hint if "CERTIFICATE_VERIFY_FAILED" in str(exc) else ""
            log.warning("Redis unavailable (%s)%s: trying again in %d s", exc, hint, delay)
            time.sleep(delay)


def run_clock(connection: Redis, *, logging_level: str, lock_seconds: int = CLOCK_LOCK_SECONDS) -> int:
    """The periodic-job clock, until SIGTERM: through Redis outages (RQ's scheduler stops
    at the first error it meets; it starts again, with its timings, once Redis answers).
    It schedules only while it holds the clock lock (``app.schedule.Clock``): a second
    clock waits, and takes over when the first stops or dies."""
    log.info("clock starting")
    scheduler = build_scheduler(connection, logging_level=logging_level, lock_seconds=lock_seconds)
    try:
        while True:
            try:
                scheduler.start()
                return 0
            except RedisError as exc:
                log.warning("clock: Redis unavailable (%s): it goes on when Redis answers", exc)
            except ClockLockLost as exc:
                log.warning("clock: %s: it waits to take over again", exc)
                continue
            time.sleep(REDIS_RETRY_FIRST_SECONDS)
            wait_for_redis(connection)
    except StopRequested:  # SIGTERM while waiting (start() installed the handler)
        log.info("clock stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
