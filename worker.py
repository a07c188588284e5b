"""The RQ worker process (the Procfile's ``worker``): ``python worker.py [--burst]``.

Builds the application once and pushes one application context, then runs an RQ worker
(with its scheduler, so that retries with backoff happen) on the ``mail``, ``imports`` and
``media`` queues. Each job forks from this process, so the app is imported before any job runs.

``python worker.py --cron`` is the Procfile's ``clock`` instead: it enqueues the periodic
jobs of ``app.schedule`` (the mail relay, the uploads upkeep) for the workers to run.
"""

from __future__ import annotations

import argparse
import logging
import sys

from rq import Worker

from app import create_app
from app.extensions import db, redis_queues
from app.schedule import build_scheduler

log = logging.getLogger("storefront.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an RQ worker for the Storefront queues.")
    parser.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    parser.add_argument("--name", default=None, help="worker name (default: generated)")
    parser.add_argument("--cron", action="store_true", help="run the periodic-job clock instead of a worker")
    args = parser.parse_args(argv)

    app = create_app()
    with app.app_context():
        if redis_queues.in_process:
            print(
                "REDIS_URL is not set: jobs run in-process inside the web application, "
                "so there is nothing for a worker to do. Set REDIS_URL to use real workers."
            )
            return 0
        if args.cron:
            log.info("clock starting")
            scheduler = build_scheduler(redis_queues.connection, logging_level=app.config["LOG_LEVEL"])
            scheduler.start()  # type: ignore[no-untyped-call]  # rq.cron leaves start() unannotated
            return 0
        # Work horses are forked from here: they must not share the parent's sockets.
        db.engine.dispose()
        queues = redis_queues.all_queues()
        worker = Worker(queues, connection=redis_queues.connection, name=args.name)
        log.info("worker starting", extra={"queues": [q.name for q in queues], "burst": args.burst})
        worker.work(burst=args.burst, with_scheduler=True, logging_level=app.config["LOG_LEVEL"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
