"""shared/cost_model.py: the batch cost learned from the engine's reports, and the batch it gives.

The engine is simulated: its p99 is a + b * batch (times a squeeze factor), with multiplicative
noise and occasional outliers; each interval it reports at the batch it ran, and adopts the
decision that follows. Nothing here reads a wall clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import cost_model
from shared.config import DecisionConstants
from shared.cost_model import choose, fit, update
from shared.decision import decide, replay
from shared.messages import FeedbackReport, PriorState, ScalingDecision
from shared.rebuild import prior_after
from tests.support.factories import cpu_only_host, inputs_for

C = DecisionConstants()
T = 25.0  # the engine's objective, ms


# --- the fit ------------------------------------------------------------------------------


@settings(max_examples=60)
@given(a=st.floats(0.0, 10.0), b=st.floats(0.001, 0.2), seed=st.integers(0, 2**16))
def test_the_fit_recovers_a_and_b_through_noise_and_outliers(a: float, b: float, seed: int) -> None:
    rng = random.Random(seed)
    sizes = [100, 200, 400, 800, 1600]
    points = []
    for i in range(16):
        x = sizes[i % len(sizes)]
        y = (a + b * x) * rng.uniform(0.97, 1.03)
        if i in (3, 11):  # two outliers: a GC pause, a page-in
            y *= 3.0
        points.append((x, y))
    f = fit(points)
    assert f is not None and f.sizes == 5 and f.points == 16
    for x in sizes:  # the fit predicts every size within the noise, the outliers ignored
        assert f.predict(x) == pytest.approx(a + b * x, rel=0.06)
    # a and b within what 3 % noise on a batch of 100..1600 leaves them
    scale = 0.03 * (a + b * 1600)
    assert abs(f.b_ms - b) <= 0.1 * b + scale / 1000
    assert abs(f.a_ms - a) <= 2 * scale


def test_one_batch_size_is_proportional_and_no_points_is_no_fit() -> None:
    assert fit([]) is None
    f = fit([(1000, 20.0), (1000, 22.0), (1000, 90.0)])  # the median, not the outlier
    assert f is not None and (f.a_ms, f.sizes) == (0.0, 1) and f.b_ms == pytest.approx(0.022)


def test_a_negative_intercept_is_a_proportional_fit() -> None:
    f = fit([(100, 1.0), (200, 4.0)])  # slope 0.03 would put a at -2
    assert f is not None and f.a_ms == 0.0 and f.b_ms == pytest.approx(0.015)


def test_the_window_is_bounded_and_keeps_the_sizes_that_give_the_slope() -> None:
    points: list[cost_model.Point] = [(500, 12.0)]
    for _ in range(40):
        points = update(points, 1000, 22.0, T).points
    assert len(points) == cost_model.POINTS_KEPT
    assert (500, 12.0) in points  # the only other size survives 40 reports at one size


# --- change detection ---------------------------------------------------------------------


def test_a_change_of_cost_rescales_the_window_at_once() -> None:
    points = [(x, 2.0 + 0.02 * x) for x in (500, 1000) * 4]
    u = update(points, 1000, 4 * 22.0, T)  # a squeeze to a quarter of the CPU
    assert u.rescaled == pytest.approx(4.0)
    assert u.fit.predict(500) == pytest.approx(4 * 12.0)
    back = update(u.points, 200, 2.0 + 0.02 * 200, T)  # the squeeze ends
    assert back.rescaled == pytest.approx(0.25, rel=0.01)
    assert back.fit.predict(1000) == pytest.approx(22.0, rel=0.01)


def test_noise_is_not_a_change() -> None:
    points = [(x, 2.0 + 0.02 * x) for x in (500, 1000) * 4]
    u = update(points, 1000, 22.0 * 1.05, T)
    assert u.rescaled is None


def test_a_miss_the_fit_did_not_predict_is_a_change_even_when_small() -> None:
    points = [(x, 2.0 + 0.02 * x) for x in (500, 1000) * 4]  # 1000 -> 22 ms
    u = update(points, 1000, 26.0, T)  # 1.18x: under CHANGE_RATIO, but it missed T
    assert u.rescaled == pytest.approx(26.0 / 22.0)


# --- the choice ---------------------------------------------------------------------------


def test_the_choice_meets_the_objective_within_the_engines_bounds() -> None:
    f = cost_model.CostFit(a_ms=1.9, b_ms=0.021, points=8, sizes=2)
    c = choose(f, lo=16, hi=4096, previous=None, share=0.9, objective_ms=T)
    assert c.batch == math.floor((0.9 * T - 1.9) / 0.021) and f.predict(c.batch) <= 0.9 * T
    assert choose(f, lo=16, hi=500, previous=None, share=0.9, objective_ms=T).batch == 500
    slow = cost_model.CostFit(a_ms=30.0, b_ms=0.021, points=8, sizes=2)
    worst = choose(slow, lo=16, hi=4096, previous=None, share=0.9, objective_ms=T)
    assert worst.batch == 16 and not worst.meets and "engine's minimum 16" in worst.note


def test_the_engines_own_size_stands_while_it_meets_the_objective() -> None:
    f = cost_model.CostFit(a_ms=1.9, b_ms=0.021, points=8, sizes=2)  # 1000 -> 22.9 ms > 0.9 T
    assert choose(f, lo=16, hi=1000, previous=None, share=0.9, objective_ms=T).batch == 1000


def test_a_batch_near_the_best_is_held_and_a_probe_runs_once_per_size() -> None:
    f = cost_model.CostFit(a_ms=1.9, b_ms=0.021, points=8, sizes=2)
    best = choose(f, lo=16, hi=4096, previous=None, share=0.9, objective_ms=T).batch
    held = choose(f, lo=16, hi=4096, previous=best - 20, share=0.9, objective_ms=T)
    assert held.batch == best - 20 and "held" in held.note
    far = choose(f, lo=16, hi=4096, previous=best // 2, share=0.9, objective_ms=T)
    assert far.batch == best
    one = cost_model.CostFit(a_ms=0.0, b_ms=0.01, points=1, sizes=1)
    probe = choose(one, lo=16, hi=1000, previous=None, share=0.9, objective_ms=T, probe_from=1000)
    assert probe.batch == 500 and "learn the cost per item" in probe.note
    # no model yet beyond one size, at the engine's minimum: no probe, the configured size
    assert choose(one, lo=1000, hi=1000, previous=None, share=0.9, objective_ms=T,
                  probe_from=1000).batch == 1000  # fmt: skip


# --- through decide: a simulated engine ---------------------------------------------------


@dataclass
class Engine:
    """p99 = (a + b * batch) * squeeze * noise; reports every interval at the batch it ran."""

    a: float = 1.9
    b: float = 0.021
    configured: int = 1000
    minimum: int = 16
    maximum: int = 4096
    noise: float = 0.03
    outliers: tuple[int, ...] = ()
    seed: int = 1
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def true_p99(self, batch: int, squeeze: float) -> float:
        return (self.a + self.b * batch) * squeeze

    def p99(self, k: int, batch: int, squeeze: float) -> float:
        y = self.true_p99(batch, squeeze) * self.rng.uniform(1 - self.noise, 1 + self.noise)
        return y * (3.0 if k in self.outliers else 1.0)


@dataclass
class Step:
    k: int
    ran: int  # the batch the interval ran at
    p99: float
    batch: int  # the batch in force after the decision on its report
    decision: ScalingDecision | None


def run(engine: Engine, squeeze: dict[int, float], n: int = 30) -> list[Step]:
    inp = inputs_for(cpu_only_host(), 0.5, 0.2, 0.5)
    prior, now = PriorState(), 1000.0
    d, prior = decide(inp, prior, host_id="h", now=now, c=C)
    assert d is not None
    batch, factor = engine.configured, d.scaling_factor  # the engine starts at its own size
    out = []
    for k in range(n):
        now += 1.0
        p99 = engine.p99(k, batch, squeeze.get(k, 1.0))
        fb = FeedbackReport(
            event_time=now - 0.01, host_id="h", interval_seconds=1.0, latency_p50_ms=p99 / 2,
            latency_p99_ms=p99, latency_objective_ms=T, resident_memory_bytes=1 << 30,
            batch_size=batch, scaling_factor=factor, batch_min=engine.minimum,
            batch_max=engine.maximum, batch_configured=engine.configured,
        )  # fmt: skip
        fed = msgspec.structs.replace(inp, feedback=fb, feedback_age_seconds=0.01)
        ran = batch
        nd, prior = decide(fed, prior, host_id="h", now=now, c=C)
        if nd is not None:
            assert replay(nd, C) == nd  # rebuilt from what the decision records
            assert prior_after(nd, C) == prior  # a restarted decider resumes the same window
            batch, factor = min(engine.maximum, max(engine.minimum, nd.batch_size)), nd.scaling_factor
        out.append(Step(k, ran, p99, batch, nd))
    return out


def optimal(engine: Engine, squeeze: float) -> int:
    """The largest batch whose true p99 meets 0.9 T, within the engine's bounds."""
    n = math.floor((0.9 * T / squeeze - engine.a) / engine.b)
    return max(engine.minimum, min(engine.configured, n))


SQUEEZE = {k: 4.0 for k in range(10, 20)}


def test_a_squeeze_and_its_end_are_each_one_step() -> None:
    e = Engine(outliers=(6,))
    steps = run(e, SQUEEZE)
    before, start, end = steps[9], steps[10], steps[20]
    assert before.batch == e.configured  # learned (one probe) and back at the engine's own size
    # squeeze x4 at interval 10: the decision on that one report is the right size
    assert e.true_p99(start.batch, 4.0) <= T
    assert start.batch >= 0.75 * optimal(e, 4.0)  # not cut much further than it needs
    assert all(s.batch == start.batch or abs(s.batch - start.batch) <= 0.15 * start.batch
               for s in steps[11:20])  # no creeping: it stays near the first cut  # fmt: skip
    assert all(s.p99 <= T for s in steps[11:20])
    # its end at interval 20: back at the configured size on that one report
    assert end.batch == e.configured
    assert all(s.p99 <= T for s in steps[21:])
    d = start.decision
    assert d is not None and any("cost x4" in r and f"-> {start.batch}" in r for r in d.reasons)


def test_an_outlier_costs_one_interval_at_most() -> None:
    e = Engine(outliers=(6,))
    steps = run(e, {})
    assert steps[6].batch < e.configured  # the lone 3x report is taken as a change ...
    assert steps[7].batch == e.configured  # ... and the next normal one takes it back
    assert [s.batch for s in steps[8:]] == [e.configured] * len(steps[8:])


def test_the_first_report_is_the_configured_size_or_its_probe() -> None:
    e = Engine(noise=0.0)
    steps = run(e, {}, n=3)
    assert steps[0].ran == e.configured  # no model yet: the engine's own size
    assert steps[0].batch == e.configured // 2  # one interval to learn the slope
    assert steps[1].batch == e.configured  # then back, and it stays
    assert steps[2].decision is None  # nothing changed: nothing published


@settings(max_examples=40, deadline=None)
@given(
    a_share=st.floats(0.0, 0.25),
    load=st.floats(0.2, 0.95),
    squeeze=st.floats(1.5, 6.0),
    configured=st.integers(64, 20000),
    minimum=st.integers(1, 64),
    seed=st.integers(0, 1000),
)
def test_bounds_and_one_step_hold_for_any_engine(
    a_share: float, load: float, squeeze: float, configured: int, minimum: int, seed: int
) -> None:
    a = a_share * T
    b = max(1e-6, (load * T - a) / configured)  # the configured size runs at `load` x T
    e = Engine(a=a, b=b, configured=configured, minimum=minimum, maximum=configured * 2,
               noise=0.02, seed=seed)  # fmt: skip
    steps = run(e, {k: squeeze for k in range(8, 16)}, n=22)
    for s in steps:  # never above the configured size, never below the minimum
        assert e.minimum <= s.batch <= e.configured
    start, end = steps[8], steps[16]
    if e.true_p99(e.minimum, squeeze) <= 0.85 * T:  # some batch the engine allows can meet it
        # the first decision in the squeeze does (within the noise the report was measured with)
        assert e.true_p99(start.batch, squeeze) <= T * (1 + e.noise)
    assert end.batch == e.configured  # and the first after it is the engine's own size again


def test_without_feedback_the_decision_is_todays() -> None:
    inp = inputs_for(cpu_only_host(), 0.5, 0.2, 0.5)
    d, state = decide(inp, PriorState(), host_id="h", now=1000.0, c=C)
    assert d is not None and state.cost_points is msgspec.UNSET
    assert d.batch_size == C.max_batch_size  # the seed's memory plan on this host
