"""Jobs for real worker processes (``python worker.py`` imports them by their dotted path:
the repository is its first ``sys.path`` entry). They need no application context."""

from __future__ import annotations

import time

from rq import get_current_job


def sleep_then_mark(seconds: float, key: str) -> str:
    """Take ``seconds``, then set ``key`` in the job's Redis: its effect, visible only if it
    ran to the end."""
    time.sleep(seconds)
    job = get_current_job()
    assert job is not None
    job.connection.set(key, "done")
    return "done"
