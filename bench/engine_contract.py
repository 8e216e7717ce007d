"""The contract between `python -m bench engine` and an engine process (one place, pure logic).

Command line the bench passes (``engine_argv``):
  python examples/trading_engine.py --mode {float64,float16-naive,qas} --seed N --symbols N
      --ticks BARS --tick-size TICK --latency-objective-ms MS --memory-limit-bytes N
      --thermal-file PATH --positions-out PATH --json [extra engine options]
The run ends after BARS bars (or when the kernel kills it). The bench writes the announced thermal
state (a float 0..1, e.g. "0.9") into --thermal-file during the CPU squeeze and "0.0" otherwise.

--positions-out receives each bar's positions from bar ``SLOW`` on: one int8 per symbol per bar,
in bar order, so two runs compare bar for bar whatever their batch sizes.

JSON lines on stdout, flushed per line (anything else on stdout is ignored):
  {"type":"interval","t":<s since start>,"ticks":<cumulative bars>,"sim_hours":<trading hours>,
   "rss_bytes":<int>,"p99_batch_ms":<float>,"batch_size":<int>,"precision_bits":<int>,
   "lat_ms":[<each batch's latency this interval, ms>...],
   "history_bytes":<int>,"evicted":<history blocks dropped so far>,
   "pnl_bp":<cumulative PnL in basis points at the last bar>,
   "pnl_marks":[[<bar index>,<cumulative PnL bp at that bar>],...]}   # fixed bars: comparable
  {"type":"summary",...}                                             # only if it ends normally
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODES = ("float64", "float16-naive", "qas")
I8 = npt.NDArray[np.int8]


def engine_argv(python: str, script: str, mode: str, *, seed: int, symbols: int, bars: int,
                tick_size: float, objective_ms: float, limit_bytes: int, thermal_file: str,
                positions_out: str, extra: tuple[str, ...] = ()) -> list[str]:  # fmt: skip
    return [python, script, "--mode", mode, "--seed", str(seed), "--symbols", str(symbols),
            "--ticks", str(bars), "--tick-size", repr(tick_size),
            "--latency-objective-ms", str(objective_ms), "--memory-limit-bytes", str(limit_bytes),
            "--thermal-file", thermal_file, "--positions-out", positions_out, "--json", *extra]  # fmt: skip


@dataclass
class Run:
    intervals: list[dict[str, Any]] = field(default_factory=list)
    pnl_by_bar: dict[int, float] = field(default_factory=dict)
    summary: dict[str, Any] | None = None

    def feed(self, line: str) -> None:
        try:
            rec = json.loads(line)
        except ValueError:
            return
        if not isinstance(rec, dict):
            return
        if rec.get("type") == "interval":
            self.intervals.append(rec)
            for bar, pnl in rec.get("pnl_marks", []):
                self.pnl_by_bar[int(bar)] = float(pnl)
        elif rec.get("type") == "summary":
            self.summary = rec

    @property
    def ticks(self) -> int:
        return int(self.intervals[-1]["ticks"]) if self.intervals else 0

    @property
    def seconds(self) -> float:
        return float(self.intervals[-1]["t"]) if self.intervals else 0.0

    def ticks_before_eviction(self) -> int:
        """Bars traded while the whole history was held: up to the last interval before the
        first one that reports an eviction (all of them if none does)."""
        held = 0
        for r in self.intervals:
            if int(r.get("evicted", 0)) > 0:
                return held
            held = int(r["ticks"])
        return held

    def seconds_to(self, ticks: int) -> float | None:
        """When the run had traded ``ticks`` bars (linear between interval records)."""
        t0, n0 = 0.0, 0
        for r in self.intervals:
            t1, n1 = float(r["t"]), int(r["ticks"])
            if n1 >= ticks:
                return t0 + (t1 - t0) * (ticks - n0) / max(1, n1 - n0)
            t0, n0 = t1, n1
        return None


def read_positions(path: Path, symbols: int) -> I8:
    """The positions file as (bars, symbols); a partial last row (a killed run) is dropped."""
    raw = np.fromfile(path, dtype=np.int8) if path.exists() else np.empty(0, dtype=np.int8)
    rows = len(raw) // symbols
    return raw[: rows * symbols].reshape(rows, symbols)


def positions_match_ratio(run: I8, ref: I8) -> float | None:
    """Share of the bars both hold on which every symbol's position is equal."""
    n = min(len(run), len(ref))
    if n == 0:
        return None
    return float(np.all(run[:n] == ref[:n], axis=1).mean())


def pnl_diff_bp(run: Run, ref: Run) -> float | None:
    """The largest |PnL difference| over the bars both marked; None when none are common or a
    mark is not finite (the run's PnL is not comparable)."""
    common = [b for b in run.pnl_by_bar if b in ref.pnl_by_bar]
    if not common:
        return None
    diffs = [abs(run.pnl_by_bar[b] - ref.pnl_by_bar[b]) for b in common]
    return max(diffs) if all(math.isfinite(d) for d in diffs) else None


def latencies(run: Run, start: float, end: float) -> list[float]:
    """Every batch latency (ms) of the intervals that ended in [start, end)."""
    return [float(x) for r in run.intervals if start <= float(r["t"]) < end for x in r.get("lat_ms", [])]


def p99(xs: list[float]) -> float | None:
    return float(np.percentile(xs, 99)) if xs else None


def p99_in(run: Run, start: float, end: float) -> float | None:
    return p99(latencies(run, start, end))


def recovery_seconds(run: Run, squeeze_start: float, objective_ms: float) -> float | None:
    """Seconds from the squeeze start to the end of the first interval that began after it and
    whose p99 is under the objective (None if none does)."""
    prev = 0.0
    for r in run.intervals:
        t = float(r["t"])
        if prev >= squeeze_start and (p := p99([float(x) for x in r.get("lat_ms", [])])) is not None:
            if p <= objective_ms:
                return t - squeeze_start
        prev = t
    return None


def slack(limit: int, peak: int | None) -> float | None:
    return None if peak is None else (limit - peak) / limit
