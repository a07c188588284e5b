"""What RQ's worker leaves when a job's work-horse dies on its last try (the OOM killer,
kill -9): the job failed, in its queue's failed registry, none of the job's own code run;
and what an operator's scrape of ``/metrics`` then counts."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from rq.job import Job, JobStatus

from app.extensions import redis_queues


def failed_on_its_last_try(app: Flask, queue: str, job_id: str, func: str) -> None:
    with app.app_context():
        job = Job.create(func, id=job_id, origin=queue, connection=redis_queues.connection)
        job.set_status(JobStatus.FAILED)
        registry = redis_queues.queue(queue).failed_job_registry
        registry.add(job, exc_string="Work-horse terminated unexpectedly; waitpid returned 9 (signal 9)")


def failed_jobs(client: FlaskClient, queue: str) -> float:
    """``rq_failed_jobs`` of ``queue``, as ``/metrics`` says."""
    prefix = f'rq_failed_jobs{{queue="{queue}"}} '
    lines = client.get("/metrics").get_data(as_text=True).splitlines()
    return float(next(line for line in lines if line.startswith(prefix)).removeprefix(prefix))
