"""The bench's reading of engine output (bench/engine_contract.py): positions and PnL bar for bar."""

from __future__ import annotations

import json

from bench.engine_contract import Run, pnl_diff_bp, positions_match_ratio


def interval(bars: list[list[object]], pnl: float, marks: list[list[float]]) -> str:
    return json.dumps({"type": "interval", "t": 1.0, "ticks": 1, "sim_hours": 0.0, "rss_bytes": 1,
                       "p99_batch_ms": 1.0, "batch_size": 1, "precision_bits": 64, "bars": bars,
                       "pnl_bp": pnl, "pnl_marks": marks, "adopted_decision_ms": None})  # fmt: skip


def test_pnl_marks_compare_runs_whose_intervals_end_on_different_bars() -> None:
    ref, run = Run(), Run()
    ref.feed(interval([[499, [1]], [500, [1]], [501, [-1]]], 7.0, [[500, 5.0]]))
    run.feed(interval([[499, [1]], [500, [1]]], 5.5, [[500, 5.5]]))
    run.feed("not json")
    run.feed('{"type":"adopted"}')  # other record types are ignored
    assert positions_match_ratio(run, ref) == 1.0
    assert pnl_diff_bp(run, ref) == 0.5


def test_without_marks_only_interval_ends_compare() -> None:
    ref, run = Run(), Run()
    ref.feed(interval([[10, [1]]], 3.0, []))
    run.feed(interval([[11, [1]]], 3.0, []))
    assert pnl_diff_bp(run, ref) is None
