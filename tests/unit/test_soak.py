"""scripts/soak.py's verdict: a run fails on errors, on memory that keeps growing, on
connections that keep growing and on a queue left behind; a steady run passes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from soak import Sample, slope_per_hour, verdict


def run(minutes: int = 12, *, anon=lambda m: 100.0, conns=lambda m: 12, errors=lambda m: 0) -> list[Sample]:
    return [
        Sample(
            minute=m,
            requests=480,
            errors=errors(m),
            p50_ms=8.0,
            p95_ms=20.0,
            p99_ms=40.0,
            by_kind={},
            rss_mb={"web": 600.0, "worker": 120.0},
            anon_mb={"web": anon(m), "worker": 80.0},
            processes={"web": 3, "worker": 1},
            pg_connections=conns(m),
            queue_depth=0,
            error_examples=["alert: 503 {...}"] if errors(m) else [],
        )
        for m in range(1, minutes + 1)
    ]


def test_a_steady_run_passes():
    assert verdict(run(anon=lambda m: 100.0 + (m % 2)), max_growth=15, final_depth=0) == []


def test_errors_fail_the_run_with_the_first_one_quoted():
    [failure] = verdict(run(errors=lambda m: 2 if m == 5 else 0), max_growth=15, final_depth=0)
    assert failure == "2 requests failed (first: alert: 503 {...})"


def test_private_memory_that_keeps_growing_fails_the_run():
    [failure] = verdict(run(anon=lambda m: 100.0 + 5 * m), max_growth=15, final_depth=0)
    assert failure.startswith("web private memory grew from")


def test_connections_that_keep_growing_fail_the_run():
    [failure] = verdict(run(conns=lambda m: 12 + m), max_growth=15, final_depth=0)
    assert failure.startswith("Postgres connections grew from")


def test_a_queue_left_behind_fails_the_run():
    [failure] = verdict(run(), max_growth=15, final_depth=500)
    assert failure == "500 jobs still queued a minute after the traffic stopped"


def test_the_slope_is_per_hour_from_the_sampling_interval():
    assert slope_per_hour([100.0, 101.0, 102.0]) == pytest.approx(60.0)  # 1 MB a minute
    assert slope_per_hour([100.0, 101.0, 102.0], every_seconds=30) == pytest.approx(120.0)
