"""The bench's reading of engine output (bench/engine_contract.py): positions, PnL, evictions,
latencies and recovery, bar for bar and interval by interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.engine_contract import (
    Run,
    p99_in,
    pnl_diff_bp,
    positions_match_ratio,
    read_positions,
    recovery_seconds,
)


def interval(t: float, ticks: int, marks: list[list[float]], lat: list[float], evicted: int = 0) -> str:
    return json.dumps({"type": "interval", "t": t, "ticks": ticks, "sim_hours": 0.0, "rss_bytes": 1,
                       "p99_batch_ms": max(lat or [0]), "batch_size": 1, "precision_bits": 64,
                       "lat_ms": lat, "evicted": evicted, "pnl_bp": 0.0, "pnl_marks": marks})  # fmt: skip


def test_pnl_marks_compare_on_common_bars_and_report_the_largest_difference() -> None:
    ref, run = Run(), Run()
    ref.feed(interval(1.0, 1000, [[500, 5.0], [1000, 7.0]], [1.0]))
    run.feed(interval(1.0, 600, [[500, 5.5]], [1.0]))
    run.feed("not json")
    run.feed('{"type":"adopted"}')  # other record types are ignored
    assert pnl_diff_bp(run, ref) == 0.5
    run.feed(interval(2.0, 1000, [[1000, 9.0]], [1.0]))
    assert pnl_diff_bp(run, ref) == 2.0


def test_a_pnl_that_is_not_finite_is_not_comparable() -> None:
    ref, run = Run(), Run()
    ref.feed(interval(1.0, 500, [[500, 5.0]], [1.0]))
    run.feed('{"type":"interval","t":1,"ticks":500,"lat_ms":[],"pnl_marks":[[500,NaN]]}')
    assert pnl_diff_bp(run, ref) is None
    assert pnl_diff_bp(Run(), ref) is None  # no common bar


def test_positions_compare_the_bars_both_hold(tmp_path: Path) -> None:
    ref = np.array([[1, -1], [2, 2], [3, -3]], dtype=np.int8)
    (tmp_path / "run").write_bytes(np.array([[1, -1], [2, 1]], dtype=np.int8).tobytes() + b"\x01")
    run = read_positions(tmp_path / "run", 2)  # a killed run's partial last row is dropped
    assert run.shape == (2, 2)
    assert positions_match_ratio(run, ref) == 0.5
    assert positions_match_ratio(run[:0], ref) is None


def test_hours_count_only_up_to_the_first_eviction() -> None:
    run = Run()
    for i, ev in enumerate([0, 0, 2, 5], start=1):
        run.feed(interval(float(i), 100 * i, [], [1.0], evicted=ev))
    assert run.ticks == 400 and run.ticks_before_eviction() == 200
    assert run.seconds_to(250) == 2.5


def test_p99_is_over_every_batch_and_recovery_needs_an_interval_begun_in_the_squeeze() -> None:
    run = Run()
    run.feed(interval(1.0, 1, [], [5.0] * 99 + [50.0]))
    run.feed(interval(2.0, 2, [], [1.0] * 50))  # began before the squeeze at 1.5: does not count
    run.feed(interval(3.0, 3, [], [90.0, 80.0]))
    run.feed(interval(4.0, 4, [], [10.0, 12.0]))
    assert p99_in(run, 0, 1.5) is not None and p99_in(run, 0, 1.5) < 50.0
    assert recovery_seconds(run, 1.5, 20.0) == 2.5
    assert recovery_seconds(run, 1.5, 5.0) is None
