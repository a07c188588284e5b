"""Background jobs: enqueue only after the commit that made them necessary.

Services call ``enqueue_after_commit``; the job is held on the SQLAlchemy session and
sent to its RQ queue when (and only if) the session's transaction commits. A rollback
drops it. Job functions are wrapped with ``@task``: each runs in its own application
context, hence its own database session, whether a worker or the embedded in-process
queue executes it. Exceptions propagate so that RQ retries and records failures.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from types import TracebackType
from typing import Any, NoReturn, ParamSpec, Protocol, TypeVar

import sqlalchemy as sa
from flask import current_app, has_app_context
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy.orm import Session, SessionTransaction

from app.db import db
from app.extensions import redis_queues

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

PENDING_KEY = "storefront.pending_jobs"
# Backoff for transient failures (SMTP hiccups, a busy database): 10 s … 30 min.
DEFAULT_RETRY_INTERVALS = [10, 60, 300, 900, 1800]
_LIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


@dataclass
class PendingJob:
    queue: str
    func: Callable[..., Any] | str  # a function or its dotted path
    args: tuple[Any, ...]
    job_id: str | None
    retries: int
    description: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout: int | None = None  # seconds the job may run (RQ's job_timeout); None: RQ's default


_after_job: list[Callable[[], None]] = []


def after_job(hook: Callable[[], None]) -> None:
    """Run ``hook`` (in the job's app context) when each job function ends, however it ends:
    the work horse that ran it ends next, with whatever it left to do."""
    if hook not in _after_job:
        _after_job.append(hook)


def task(func: Callable[P, R]) -> Callable[P, R]:
    """Run a job function in a fresh application context (its own DB session)."""

    @wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with current_app.app_context():
            try:
                return func(*args, **kwargs)
            finally:
                for hook in _after_job:
                    hook()

    return run


def enqueue_after_commit(
    queue: str,
    func: Callable[..., Any] | str,
    *args: Any,
    job_id: str | None = None,
    retries: int = len(DEFAULT_RETRY_INTERVALS),
    description: str | None = None,
    timeout: int | None = None,
) -> None:
    """Send ``func(*args)`` to ``queue`` once the current transaction commits."""
    pending: list[PendingJob] = db.session.info.setdefault(PENDING_KEY, [])
    pending.append(PendingJob(queue, func, args, job_id, retries, description, timeout=timeout))


def enqueue_now(job: PendingJob) -> bool:
    """Enqueue immediately; False (and a log line) when Redis cannot take it.

    Work that must not be lost is also recorded in the database (the mail outbox, an
    import row), and a relay re-enqueues it once Redis is back.
    """
    return _send_to_redis([job], ())


class RedisWrites(Protocol):
    """Redis commands a commit leaves to send besides its jobs (the catalog cache's
    changes): they go in the same round trip as the jobs (``send_after_commit``) when
    they go to the same Redis."""

    def redis(self) -> Redis:
        """The connection the commands go to."""

    def queue(self, pipe: Pipeline) -> None:
        """Add the commands to ``pipe``."""

    def answered(self, results: list[Any]) -> None:
        """What Redis answered to each command: a value, or the error it raised."""

    def refused(self, error: RedisError | None) -> None:
        """Redis could not be reached (or refused the commands): nothing was sent."""


# Each returns, after a commit, what it has to send to Redis then (``send_after_commit``).
_collectors: list[Callable[[Session], RedisWrites | None]] = []


def send_after_commit(collect: Callable[[Session], RedisWrites | None]) -> None:
    """After every commit, send what ``collect`` returns (None: nothing) together with the
    commit's jobs, in one round trip."""
    if collect not in _collectors:
        _collectors.append(collect)


def _send_to_redis(jobs: list[PendingJob], writes: Sequence[RedisWrites]) -> bool:
    """Enqueue ``jobs`` and send ``writes`` in one round trip to Redis (one transaction
    for RQ's commands and theirs); False (and a log line) when a job could not be
    enqueued. In-process, each job runs as it is enqueued (and no writes exist: the
    catalog cache needs a real Redis)."""
    enqueues = [_Enqueue(job) for job in jobs]
    if redis_queues.in_process:
        for enqueue in enqueues:
            enqueue.alone()
        return all(enqueue.taken for enqueue in enqueues)
    # One pipeline per connection: one round trip when the queues and the writes share one.
    rounds: dict[int, _Round] = {}
    owners: list[tuple[Redis, RedisWrites]] = [(write.redis(), write) for write in writes]
    owners += [(enqueue.redis(), enqueue) for enqueue in enqueues]
    for connection, owner in owners:
        if id(connection) not in rounds:
            rounds[id(connection)] = _Round(connection.pipeline())
        try:
            rounds[id(connection)].add(owner)
        except RedisError as error:  # RQ asks its connection for Redis' version once
            owner.refused(error)
    for round_ in rounds.values():
        round_.send()
    return all(enqueue.taken for enqueue in enqueues)


@dataclass
class _Enqueue:
    """A job as one owner of commands in a pipeline (see ``RedisWrites``)."""

    job: PendingJob
    taken: bool = True

    def redis(self) -> Redis:
        connection: Redis = redis_queues.queue(self.job.queue).connection
        return connection

    def queue(self, pipe: Pipeline) -> None:
        _send(self.job, pipe)

    def answered(self, results: list[Any]) -> None:
        if any(isinstance(result, Exception) for result in results):
            self.refused(None)

    def refused(self, error: RedisError | None) -> None:
        log.warning(
            "could not enqueue %s on %r; it will be relayed later", self.job.job_id or self.job.func, self.job.queue
        )
        self.taken = False

    def alone(self) -> None:
        try:
            _send(self.job, None)
        except RedisError as error:
            self.refused(error)


@dataclass
class _Round:
    """One pipeline (one ``MULTI``) and whose commands are where in it."""

    pipe: Pipeline
    spans: list[tuple[RedisWrites, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pipe.multi()  # before any command: RQ would call it otherwise, after some

    def add(self, owner: RedisWrites) -> None:
        start = len(self.pipe.command_stack)
        try:
            owner.queue(self.pipe)
        except BaseException:
            del self.pipe.command_stack[start:]  # none of a failed owner's commands go
            raise
        self.spans.append((owner, start, len(self.pipe.command_stack)))

    def send(self) -> None:
        try:
            results = self.pipe.execute(raise_on_error=False)
        except RedisError as error:
            for owner, _, _ in self.spans:
                owner.refused(error)
            return
        finally:
            self.pipe.reset()
        for owner, start, end in self.spans:
            owner.answered(list(results[start:end]))


# A failed job stays in RQ's failed registry (the dashboard, rq_failed_jobs) this long.
FAILURE_TTL_SECONDS = 30 * 24 * 3600


def _send(job: PendingJob, pipeline: Pipeline | None) -> None:
    retry = Retry(max=job.retries, interval=DEFAULT_RETRY_INTERVALS[: max(job.retries, 1)]) if job.retries else None
    options: dict[str, Any] = {
        "job_id": job.job_id,
        "retry": retry,
        "description": job.description,
        "failure_ttl": FAILURE_TTL_SECONDS,
        "pipeline": pipeline,
    }
    if job.timeout is not None:
        options["job_timeout"] = job.timeout
    queue = redis_queues.queue(job.queue)
    # Two calls for the type checker: RQ types a job's function as one or the other.
    if isinstance(job.func, str):
        queue.enqueue(job.func, *job.args, **options)
    else:
        queue.enqueue(job.func, *job.args, **options)


def _enqueue_pending(session: Session) -> None:
    pending: list[PendingJob] = session.info.pop(PENDING_KEY, [])
    writes = [write for write in (collect(session) for collect in _collectors) if write is not None]
    if pending or writes:
        _send_to_redis(pending, writes)


def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None and not previous_transaction.nested:
        session.info.pop(PENDING_KEY, None)


def register_session_hooks() -> None:
    if not sa.event.contains(Session, "after_commit", _enqueue_pending):
        sa.event.listen(Session, "after_commit", _enqueue_pending)
        sa.event.listen(Session, "after_soft_rollback", _drop_pending)


def current_job_id() -> str | None:
    """The id of the RQ job this code runs in, if any (for log lines)."""
    job = get_current_job()
    return job.id if job is not None else None


def run_time_limit(configured: int) -> int:
    """The seconds the running job was given (RQ's ``job_timeout``, as it was enqueued),
    else ``configured``: what a "took too long" message should quote."""
    job = get_current_job()
    timeout = getattr(job, "timeout", None) if job is not None else None
    return int(timeout) if isinstance(timeout, int | float) and timeout > 0 else configured


def final_attempt() -> bool:
    """Whether the running job gets no further try if it fails now (always, in-process)."""
    job = get_current_job()
    if job is None or redis_queues.in_process:
        return True
    return not job.retries_left


def has_live_job(job_id: str) -> bool:
    """Whether RQ holds the job queued, running, scheduled or deferred (for relays).

    Redis being down counts as yes: a relay has nothing to do until it is back.
    """
    try:
        job = Job.fetch(job_id, connection=redis_queues.connection)
    except NoSuchJobError:
        return False
    except RedisError:
        return True
    return job.get_status(refresh=False) in _LIVE_STATUSES


def clear_failure(queue: str, job_id: str) -> bool:
    """Take a job out of its queue's failed registry before a relay sends it again: its
    failure is handled, and left there it would count in ``rq_failed_jobs`` (and alert) for
    as long as the registry keeps it. False when Redis fails (the enqueue would too)."""
    try:
        redis_queues.queue(queue).failed_job_registry.remove(job_id)
    except RedisError as error:
        log.warning("could not clear the failure of job %s on %r: %s", job_id, queue, error)
        return False
    return True


class JobCannotRun(Exception):
    """A failure no retry can fix (``fail_for_good``)."""


def fail_for_good(message: str) -> NoReturn:
    """Fail the running job now, without the retries it has left: it stays in RQ's failed
    registry with ``message``."""
    job = get_current_job()
    if job is not None:
        job.retries_left = 0  # the job RQ is performing: its failure handling reads this
    raise JobCannotRun(message)


LAST_ERROR_MAX = 500
# What an error message may carry that the dashboard must not show: a URL's credentials
# (a database or SMTP URL in a driver's message), an email address.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]+@")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SECRET_SETTINGS = ("SECRET_KEY", "JWT_SECRET_KEY", "METRICS_TOKEN")


def record_last_error(
    job: Job, exc_type: type[BaseException], exc_value: BaseException, traceback: TracebackType | None
) -> bool:
    """An RQ exception handler (the worker's, ``build_worker``): the job's meta keeps its
    last error (type and message, cut short, without credentials, secrets or addresses),
    so the dashboard shows why a job waiting for its retry failed. RQ's own handling goes
    on (True)."""
    job.meta["last_error"] = {
        "type": exc_type.__name__,
        "message": without_secrets(str(exc_value))[:LAST_ERROR_MAX],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "retries_left": (job.retries_left or 1) - 1 if job.should_retry else 0,  # after this retry
    }
    try:
        job.save_meta()  # type: ignore[no-untyped-call]  # rq leaves save_meta unannotated
    except RedisError as error:  # RQ's failure handling goes on (and meets the same outage)
        log.warning("could not record the last error of job %s: %s", job.id, error)
    return True


def without_secrets(message: str) -> str:
    """``message`` without URL credentials, email addresses or the app's secrets (for logs
    and what the dashboard shows)."""
    message = _URL_CREDENTIALS.sub(r"\g<scheme>[redacted]@", message)
    message = _EMAIL.sub("[address]", message)
    if has_app_context():
        for name in _SECRET_SETTINGS:
            secret = current_app.config.get(name)
            if isinstance(secret, str) and len(secret) >= 8:
                message = message.replace(secret, "[redacted]")
    return message
