"""The bench's one table: rows of requests as they always were, and rows of work that is
not requests (an import: rows/s, seconds, peak RSS) with columns of their own."""

from __future__ import annotations

from typing import Any

from bench import harness
from bench.harness import Row, table

HTTP_HEADER = "| benchmark | rate | p50 | p99 | errors | ratio | goal |"


def _http_rows() -> list[Row]:
    return [
        Row(key="hello", name="hello", rate=1000.0, p50_ms=1.0, p99_ms=2.0, ratio_of=None),
        Row(key="list", name="list", rate=400.0, p50_ms=3.0, p99_ms=9.0, min_ratio=0.3, max_p99_ms=50.0),
    ]


def test_requests_alone_keep_their_columns() -> None:
    lines = table(_http_rows()).splitlines()
    assert lines[0] == HTTP_HEADER
    assert lines[3] == "| list | 400 req/s | 3.0 ms | 9.0 ms | 0 | 0.400x hello | met: >= 0.30x hello, p99 <= 50 ms |"


def test_work_rows_add_seconds_and_peak_rss_and_are_held_to_a_memory_goal() -> None:
    rows = [
        *_http_rows(),
        Row(key="naive", name="naive", rate=800.0, unit="rows/s", seconds=125.0, peak_rss_mb=190.0, ratio_of=None),
        Row(
            key="ours",
            name="ours",
            rate=2000.0,
            unit="rows/s",
            seconds=50.0,
            peak_rss_mb=210.4,
            ratio_of="naive",
            min_rate=1000.0,
            max_peak_rss_mb=200.0,
        ),
    ]
    lines = table(rows).splitlines()
    assert lines[0] == "| benchmark | rate | p50 | p99 | seconds | peak RSS | errors | ratio | goal |"
    assert lines[3] == (
        "| list | 400 req/s | 3.0 ms | 9.0 ms |  |  | 0 | 0.400x hello | met: >= 0.30x hello, p99 <= 50 ms |"
    )
    assert lines[5] == (
        "| ours | 2,000 rows/s |  |  | 50.00 s | 210 MB | 0 | 2.500x naive "
        "| **NOT met**: >= 1000 rows/s, peak RSS < 200 MB |"
    )
    assert rows[3].met is False
    rows[3].peak_rss_mb = 150.0
    rows[3].judge({row.key: row for row in rows})
    assert rows[3].met is True


def test_a_measurement_that_landed_on_too_few_workers_is_lopsided_and_the_row_says_it_was_redone(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(harness, "WEB_CONCURRENCY", "2")
    assert harness._is_lopsided((100, 0))
    assert harness._is_lopsided((80,))  # the other worker did nothing at all
    assert harness._is_lopsided((76, 24))
    assert not harness._is_lopsided((75, 25))
    assert not harness._is_lopsided((50, 50))
    assert not harness._is_lopsided(())  # no reading (no server of ours): nothing to judge
    monkeypatch.setattr(harness, "WEB_CONCURRENCY", "4")
    assert harness._is_lopsided((40, 30, 20, 10))
    assert not harness._is_lopsided((30, 25, 25, 20))

    result = harness.WrkResult(1.0, 1.0, 1.0, 10, 0, output="", worker_split=(55, 45), lopsided=1)
    assert harness.split_note(result) == (
        "workers' CPU 55/45 %, measured again 1x: the load had landed on too few workers"
    )
    result.lopsided = 0
    assert harness.split_note(result) == "workers' CPU 55/45 %"


def test_a_row_says_how_much_cpu_the_workers_used_per_request(monkeypatch: Any) -> None:
    monkeypatch.setattr(harness, "_MS_PER_TICK", 10.0)
    # Two workers, 300 and 200 ticks (5 s of CPU) for 1,250 requests: 4 ms a request.
    assert harness._cpu_ms_per_request({1: 100, 2: 50}, {1: 400, 2: 250}, 1250) == 4.0
    assert harness._cpu_ms_per_request({1: 100}, {1: 100}, 1250) is None  # no reading
    assert harness._cpu_ms_per_request({}, {}, 0) is None
    result = harness.WrkResult(1.0, 1.0, 1.0, 10, 0, output="", worker_split=(52, 48), cpu_ms_per_request=4.04)
    assert harness.split_note(result) == "workers' CPU 52/48 %, 4.0 ms a request"
