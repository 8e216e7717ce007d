"""The contract between `python -m bench engine` and an engine process (one place, pure logic).

Command line the bench passes (ENGINE_ARGV):
  python examples/trading_engine.py --mode {float64,float16-naive,qas} --seed N --symbols N
      --duration SECONDS --latency-objective-ms MS --memory-limit-bytes N --thermal-file PATH --json
The bench writes the announced thermal state (a float 0..1, e.g. "0.9") into --thermal-file during
the CPU squeeze and "0.0" otherwise; the engine (or QAS beside it) reads it.

JSON lines on stdout, flushed per line (anything else on stdout is ignored):
  {"type":"interval","t":<s since start>,"ticks":<cumulative>,"sim_hours":<trading hours covered>,
   "rss_bytes":<int>,"p99_batch_ms":<float>,"batch_size":<int>,"precision_bits":<64|32|16|8>,
   "bars":[[<bar index>,[<position per symbol, int>...]],...]   # bars completed this interval
   "pnl_bp":<cumulative PnL in basis points of notional at the last bar>,
   "adopted_decision_ms":<decision-to-adoption latency or null>,
   "pnl_marks":[[<bar index>,<cumulative PnL bp at that bar>],...]}   # optional: fixed bars, so
                                                                     # runs compare bar for bar
  {"type":"summary","ticks":..,"sim_hours":..,"pnl_bp":..}          # only if it ends normally
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MODES = ("float64", "float16-naive", "qas")


def engine_argv(python: str, script: str, mode: str, seed: int, symbols: int, duration: float,
                objective_ms: float, limit_bytes: int, thermal_file: str) -> list[str]:
    return [python, script, "--mode", mode, "--seed", str(seed), "--symbols", str(symbols),
            "--duration", str(duration), "--latency-objective-ms", str(objective_ms),
            "--memory-limit-bytes", str(limit_bytes), "--thermal-file", thermal_file, "--json"]


@dataclass
class Run:
    intervals: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[int, list[int]] = field(default_factory=dict)
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
            last = None
            for bar, pos in rec.get("bars", []):
                self.positions[int(bar)] = [int(x) for x in pos]
                last = int(bar)
            if last is not None and "pnl_bp" in rec:
                self.pnl_by_bar[last] = float(rec["pnl_bp"])
            for bar, pnl in rec.get("pnl_marks", []):
                self.pnl_by_bar[int(bar)] = float(pnl)
        elif rec.get("type") == "summary":
            self.summary = rec


def positions_match_ratio(run: Run, ref: Run) -> float | None:
    common = [b for b in run.positions if b in ref.positions]
    if not common:
        return None
    return sum(run.positions[b] == ref.positions[b] for b in common) / len(common)


def pnl_diff_bp(run: Run, ref: Run) -> float | None:
    common = [b for b in run.pnl_by_bar if b in ref.pnl_by_bar]
    if not common:
        return None
    b = max(common)
    return abs(run.pnl_by_bar[b] - ref.pnl_by_bar[b])


def p99_in(run: Run, start: float, end: float) -> float | None:
    xs = [float(r["p99_batch_ms"]) for r in run.intervals if start <= float(r["t"]) < end]
    return max(xs) if xs else None


def recovery_seconds(run: Run, squeeze_start: float, objective_ms: float) -> float | None:
    """Seconds from the squeeze start until p99 is back under the objective (None if never)."""
    after = [r for r in run.intervals if float(r["t"]) >= squeeze_start]
    for r in after:
        if float(r["p99_batch_ms"]) <= objective_ms:
            return float(r["t"]) - squeeze_start
    return None


def slack(limit: int, peak: int | None) -> float | None:
    return None if peak is None else (limit - peak) / limit
