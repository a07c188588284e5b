"""Catalog reads against the ceiling and the naive peer, in one run (issue 13's table).

Three servers, one after the other, each under gunicorn as the Procfile runs it and
loaded by ``wrk -t2 -c32`` for ``BENCH_SECONDS`` after a warm-up: a bare Flask hello (the
ceiling), the naive flask-smorest + SQLAlchemy list (COUNT + OFFSET per request), and
this app on 10,000 products. Cold rows: "first read after a write" gives every request a
``max_price`` no earlier request used (above every price, so the answer is the same list):
nothing is cached for it, its count included, as for the first read of a list after a
write; "cold page" asks for pages (page, size and order) no earlier request asked for, of
one list whose count is known, as for the reads after that first one.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench import fixtures, harness
from bench.harness import Request, Row

PAGES = 50
SEARCH_TERMS = ("kettle 77", "demo-0123", "lamp", "batteries", "cosy blanket 4", "mug 19", "0042", "ettl")
COLD_REQUESTS = 60_000  # more than a row sends, measured again or not: every request is a first


@dataclass
class Case:
    key: str
    name: str
    requests: list[Request]
    warmup: list[Request] | None = None
    goal: dict[str, Any] = field(default_factory=dict)


def pages() -> list[Request]:
    return [Request("GET", f"/api/v1/products?page={n}&per_page=20") for n in range(1, PAGES + 1)]


def cold(query: Callable[[int], dict[str, Any]], start: int) -> list[Request]:
    """Requests for ``query(k)``, each with a ``max_price`` of its own above every price."""
    requests = []
    for k in range(start, start + COLD_REQUESTS):
        ceiling = f"{100_000 + k // 100}.{k % 100:02d}"
        requests.append(Request("GET", f"/api/v1/products?{urlencode({**query(k), 'max_price': ceiling})}"))
    return requests


SORTS = ("-created_at", "created_at", "name", "-name", "price", "-price")


def cold_pages(extra: dict[str, str]) -> list[Request]:
    """Every (page 1-50, size 1-100, sort) of one list once, in a fixed shuffled order:
    30,000 requests, each thread's half more than three measurements of a run send."""
    combos = [(page, size, sort) for page in range(1, PAGES + 1) for size in range(1, 101) for sort in SORTS]
    random.Random(13).shuffle(combos)
    return [
        Request("GET", f"/api/v1/products?{urlencode({'page': p, 'per_page': n, 'sort': o, **extra})}")
        for p, n, o in combos
    ]


def cursor_walk(port: int) -> list[Request]:
    """The first ``PAGES`` pages of a cursor walk (cursors are signed: the server makes them)."""
    paths = ["/api/v1/products?limit=20"]
    while len(paths) < PAGES:
        status, body = harness.get(port, paths[-1])
        assert status == 200, body
        cursor = json.loads(body)["meta"]["next_cursor"]
        paths.append(f"/api/v1/products?{urlencode({'limit': 20, 'cursor': cursor})}")
    return [Request("GET", path) for path in paths]


def measure(base: str, case: Case) -> Row:
    requests = harness.write_requests(case.key, case.requests)
    warmup = harness.write_requests(f"{case.key}-warmup", case.warmup) if case.warmup else None
    result = harness.wrk(base + "/", requests=requests, warmup_requests=warmup, label=case.key)
    return harness.row_from(case.key, case.name, result, **case.goal)


def run(ctx: harness.Context) -> list[Row]:
    data = fixtures.catalog(ctx)
    rows: list[Row] = []

    with harness.gunicorn("bench.peers.hello:app", name="hello", env=harness.app_environment()) as port:
        result = harness.wrk(f"http://{harness.HOST}:{port}/", label="hello")
        rows.append(harness.row_from("hello", 'bare Flask {"ok": true}', result, ratio_of=None))

    naive_env = harness.app_environment()
    with harness.gunicorn("bench.peers.naive:app", name="naive", env=naive_env, ready_path="/api/v1/products") as port:
        case = Case("naive", "naive peer: flask-smorest + SQLAlchemy, COUNT + OFFSET", pages())
        rows.append(measure(f"http://{harness.HOST}:{port}", case))

    page_query: Callable[[int], dict[str, Any]] = lambda k: {"page": k % PAGES + 1, "per_page": 20}  # noqa: E731
    search_query: Callable[[int], dict[str, Any]] = lambda k: {"q": SEARCH_TERMS[k % len(SEARCH_TERMS)]}  # noqa: E731
    with ctx.app() as port:
        cases = [
            Case("live", "/health/live (this app)", [Request("GET", "/health/live")]),
            Case(
                "list",
                "GET /products?page=N&per_page=20, warm",
                pages(),
                goal={"min_ratio": 0.30, "max_p99_ms": 50.0},
            ),
            Case("cursor", "GET /products?limit=20&cursor=…, warm", cursor_walk(port)),
            Case(
                "item",
                "GET /products/{id}, warm",
                [Request("GET", f"/api/v1/products/{i}") for i in data.product_ids],
                goal={"min_ratio": 0.40},
            ),
            Case(
                "search",
                "GET /products?q=…, warm",
                [Request("GET", f"/api/v1/products?{urlencode({'q': t})}") for t in SEARCH_TERMS],
                goal={"min_ratio": 0.10},
            ),
            Case(
                "cold",
                "GET /products?page=N&per_page=20, cold: first read after a write (page and count)",
                cold(page_query, COLD_REQUESTS),
                warmup=cold(page_query, 0),
                goal={"ratio_of": "naive", "min_ratio": 2.0},
            ),
            Case(
                "cold-page",
                "GET /products?page=N&per_page=M&sort=…, cold page (count known)",
                cold_pages({}),
                warmup=cold_pages({"min_price": "0.00"}),
                goal={"ratio_of": "naive"},
            ),
            Case(
                "search-cold",
                "GET /products?q=…, cold (nothing cached)",
                cold(search_query, COLD_REQUESTS),
                warmup=cold(search_query, 0),
            ),
        ]
        base = f"http://{harness.HOST}:{port}"
        rows.extend(measure(base, case) for case in cases)
    return rows
