"""bench/sizer.py: a simulated run (no wall clock), so its rows and verdicts are checked here."""

from __future__ import annotations

import json

import pytest

from bench import sizer


def test_the_cost_model_beats_tracking_on_the_simulated_squeeze() -> None:
    base = sizer._throughput(sizer.simulate(sizer.fixed_sizer()), range(sizer.INTERVALS))
    cm = sizer.measure("cost model", sizer.simulate(sizer.CostModelSizer()), base)
    tr = sizer.measure("tracking", sizer.simulate(sizer.tracking_sizer()), base)
    assert cm["settle_intervals_after_start"] == 1 < tr["settle_intervals_after_start"]
    assert cm["back_intervals_after_end"] == 1
    assert cm["p99_misses"] < tr["p99_misses"]
    assert cm["throughput_outside_vs_configured"] >= 0.95


def test_json_rows_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
    sizer.main(json_out=True)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["sizer"] for r in rows if "sizer" in r] == [
        "cost model", "multiplicative tracking", "configured size (no sizer)"]  # fmt: skip
    targets = [r for r in rows if "target" in r]
    assert len(targets) == 4 and all(r["met"] for r in targets)
