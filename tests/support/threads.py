"""Requests sent at the same moment from real threads (for the services run's races)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask
from flask.testing import FlaskClient


def at_once(app: Flask, send: Callable[[FlaskClient, int], Any], n: int) -> list[Any]:
    """``send(client, i)`` for i in 0..n-1, each from its own thread and client, released
    together; the answers in the order of ``i``."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        client = app.test_client()
        barrier.wait()
        return send(client, i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))
