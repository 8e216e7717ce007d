"""Batch sizer: the cost model vs multiplicative target tracking on one simulated squeeze.

The engine is simulated (no wall clock): its p99 per 1 s interval is (a + b * batch) * squeeze
with a = 1.9 ms, b = 0.021 ms/item, 3 % multiplicative noise (seeded) and three 3x outlier
reports; objective T = 25 ms; configured batch 1000 (22.9 ms: it meets T), minimum 16, maximum
4096. A CPU squeeze to a quarter core (x4) runs from interval 20 to 39; the run is 60 intervals.
Each interval the engine reports at the batch it ran and adopts the decision that follows.

- cost model: the decider's (shared/decision.decide, shared/cost_model.py).
- multiplicative tracking: the rule it replaced, kept here as the baseline: on a miss the batch
  cap becomes cap * max(0.5, 0.9 T / p99) (only on a report that ran at the cap); under 0.8 T it
  rises x min(1.25, 0.9 T / p99); lifted at the configured size.
- configured size: no sizer at all.

Settle after the start: intervals from the squeeze's first interval until p99 stays under T to
its end. Back after the end: intervals from the squeeze's end until the batch is back at 95 %
of the configured size ("never": not within the run). Throughput: items/s over the run, from the true cost, against the
configured size's. Targets: the cost model settles in 1 interval after the start and is back in
1 after the end; it misses T in fewer intervals than tracking; its throughput outside the
squeeze is at least 0.95x the configured size's.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

import msgspec

from bench.common import table
from shared.config import DecisionConstants
from shared.decision import decide
from shared.messages import FeedbackReport, PriorState
from tests.support.factories import cpu_only_host, inputs_for

C = DecisionConstants()
A_MS, B_MS, T = 1.9, 0.021, 25.0
CONFIGURED, MINIMUM, MAXIMUM = 1000, 16, 4096
START, END, INTERVALS = 20, 40, 60
OUTLIERS = (8, 30, 50)

Sizer = Callable[[int, int, float], int]  # (interval, batch it ran, p99) -> next batch


def _true(batch: int, k: int) -> float:
    return (A_MS + B_MS * batch) * (4.0 if START <= k < END else 1.0)


class CostModelSizer:
    """The decider's path: each report through ``decide``, the decided batch adopted."""

    def __init__(self) -> None:
        self.inp = inputs_for(cpu_only_host(), 0.5, 0.2, 0.5)
        d, self.prior = decide(self.inp, PriorState(), host_id="h", now=1000.0, c=C)
        assert d is not None
        self.factor, self.batch = d.scaling_factor, CONFIGURED

    def __call__(self, k: int, ran: int, p99: float) -> int:
        now = 1001.0 + k
        fb = FeedbackReport(
            event_time=now - 0.01, host_id="h", interval_seconds=1.0, latency_p50_ms=p99 / 2,
            latency_p99_ms=p99, latency_objective_ms=T, resident_memory_bytes=1 << 30,
            batch_size=ran, scaling_factor=self.factor, batch_min=MINIMUM, batch_max=MAXIMUM,
            batch_configured=CONFIGURED,
        )
        fed = msgspec.structs.replace(self.inp, feedback=fb, feedback_age_seconds=0.01)
        nd, self.prior = decide(fed, self.prior, host_id="h", now=now, c=C)
        if nd is not None:
            self.batch = min(MAXIMUM, max(MINIMUM, nd.batch_size))
        return self.batch


def tracking_sizer() -> Sizer:
    """The multiplicative batch cap the cost model replaced (see the module)."""
    cap: list[int | None] = [None]

    def step(k: int, ran: int, p99: float) -> int:
        c = cap[0]
        ratio = 0.9 * T / p99 if p99 > 0 else math.inf
        if p99 > T and (c is None or ran <= c):
            c = max(1, math.floor(min(ran, c or ran) * max(0.5, ratio)))
        elif p99 < 0.8 * T and c is not None:
            c = max(c + 1, math.floor(c * min(1.25, ratio)))
            if c >= CONFIGURED:
                c = None
        cap[0] = c
        return max(MINIMUM, min(CONFIGURED, c if c is not None else CONFIGURED))

    return step


def fixed_sizer() -> Sizer:
    return lambda k, ran, p99: CONFIGURED


def simulate(sizer: Sizer, seed: int = 7) -> list[tuple[int, int, float]]:
    """(interval, batch it ran, reported p99) per interval."""
    rng = random.Random(seed)
    batch, out = CONFIGURED, []
    for k in range(INTERVALS):
        p99 = _true(batch, k) * rng.uniform(0.97, 1.03) * (3.0 if k in OUTLIERS else 1.0)
        out.append((k, batch, p99))
        batch = sizer(k, batch, p99)
    return out


def _throughput(run: list[tuple[int, int, float]], ks: range) -> float:
    """Items/s over the intervals ``ks``, batches back to back at their true cost."""
    return sum(1000.0 * n / _true(n, k) for k, n, _ in run if k in ks) / len(ks)


def measure(name: str, run: list[tuple[int, int, float]], base: float) -> dict[str, Any]:
    p99 = {k: y for k, _, y in run}
    ran = {k: n for k, n, _ in run}
    settle = next((k - START for k in range(START, END)
                   if all(p99[j] <= T for j in range(k, END) if j not in OUTLIERS)), END - START)  # fmt: skip
    back = next((k - END for k in range(END, INTERVALS) if ran[k] >= 0.95 * CONFIGURED), None)
    outside = range(0, START)
    squeezed = sorted(ran[k] for k in range(START + 2, END))
    misses = [k for k, y in p99.items() if y > T and k not in OUTLIERS]
    fixed_outside = _throughput(simulate(fixed_sizer()), outside)
    return {
        "sizer": name,
        "settle_intervals_after_start": settle,
        "back_intervals_after_end": back,
        "p99_misses": len(misses),
        "p99_misses_in_squeeze": sum(1 for k in misses if START <= k < END),
        "batch_in_squeeze_median": squeezed[len(squeezed) // 2],
        "throughput_vs_configured": _throughput(run, range(INTERVALS)) / base,
        "throughput_outside_vs_configured": _throughput(run, outside) / fixed_outside,
    }


def main(quick: bool = False, json_out: bool = False) -> None:
    fixed = simulate(fixed_sizer())
    base = _throughput(fixed, range(INTERVALS))
    rows = [
        measure("cost model", simulate(CostModelSizer()), base),
        measure("multiplicative tracking", simulate(tracking_sizer()), base),
        measure("configured size (no sizer)", fixed, base),
    ]
    cm, tr = rows[0], rows[1]
    targets = [
        ("cost model settles in 1 interval after the squeeze starts",
         cm["settle_intervals_after_start"] == 1),
        ("cost model is back in 1 interval after the squeeze ends",
         cm["back_intervals_after_end"] == 1),
        ("cost model misses T in fewer intervals than tracking",
         cm["p99_misses"] < tr["p99_misses"]),
        ("cost model throughput outside the squeeze >= 0.95x the configured size's",
         cm["throughput_outside_vs_configured"] >= 0.95),
    ]  # fmt: skip
    if json_out:
        for r in rows:
            print(json.dumps(r), flush=True)
        for what, met in targets:
            print(json.dumps({"target": what, "met": met}), flush=True)
        return
    cols = ["sizer", "settle after start", "back after end", "p99 misses (outliers aside)",
            "misses in squeeze", "median batch in squeeze", "throughput vs configured",
            "outside the squeeze"]  # fmt: skip
    shown = [["never" if v is None else v for v in r.values()] for r in rows]
    print(table(cols, shown))
    print(f"   squeeze x4 at intervals {START}-{END - 1} of {INTERVALS}; T {T:g} ms; "
          f"configured batch {CONFIGURED} ({A_MS + B_MS * CONFIGURED:.1f} ms); "
          f"best batch in the squeeze {math.floor((0.9 * T / 4 - A_MS) / B_MS)}")
    for what, met in targets:
        print(f"   target: {what}: {'met' if met else 'NOT met'}")
