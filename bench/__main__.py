"""Every benchmark of the project, one table: ``bench/run`` (or ``make bench``).

    bench/run                 all of them
    bench/run catalog         only the named ones

A benchmark is a module of this package with ``run(ctx) -> list[Row]``; list it in
``BENCHMARKS`` below (in the order its rows should appear). One that sends no load with
wrk says so with ``USES_WRK = False`` (then wrk need not be installed to run it alone).
Settings come from the environment: ``BENCH_DATABASE_URL`` (a PostgreSQL database the
bench may create, migrate and fill), ``BENCH_REDIS_URL`` (a Redis database the bench
empties), ``BENCH_SECONDS`` (10), ``BENCH_WARMUP_SECONDS`` (3), ``BENCH_CONNECTIONS`` (32),
``BENCH_PRODUCTS`` (10,000), ``BENCH_IMPORT_ROWS`` (100,000).
The table, wrk's own output and the servers' logs go to ``bench/results/`` (git-ignored).
"""

from __future__ import annotations

import importlib
import sys

from bench import harness

BENCHMARKS = ("catalog", "orders", "imports")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    modules = [importlib.import_module(f"bench.{name}") for name in names]
    if any(getattr(module, "USES_WRK", True) for module in modules):
        harness.require_wrk()
    ctx = harness.Context()
    print(
        f"database {harness.DATABASE_URL}, Redis {harness.REDIS_URL}; wrk -t{harness.WRK_THREADS} "
        f"-c{harness.WRK_CONNECTIONS}, {harness.WARMUP_SECONDS} s warm-up + {harness.SECONDS} s; gunicorn "
        f"{harness.WEB_CONCURRENCY} workers x {harness.GUNICORN_THREADS} threads (gthread)"
    )
    rows: list[harness.Row] = []
    try:
        for module in modules:
            rows.extend(module.run(ctx))
    finally:
        harness.flush_bench_redis()
    table = harness.table(rows)
    print()
    print(table)
    print(f"\n(saved to {harness.save(rows, table).relative_to(harness.ROOT)})")
    # Goals are judged in the table; the exit status says whether every request succeeded
    # (a shared, loaded machine misses goals without anything being broken).
    return 0 if not any(row.errors for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
