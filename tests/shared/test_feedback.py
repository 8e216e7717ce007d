"""shared/feedback.py: the engine's reports folded into decide() (batch: shared/cost_model.py)."""

from __future__ import annotations

from itertools import pairwise

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import DecisionConstants
from shared.decision import decide, replay
from shared.feedback import track
from shared.messages import DecisionInputs, FeedbackReport, PriorState, ScalingDecision
from tests.support.factories import GIB, cpu_only_host, inputs_for, reference_host

C = DecisionConstants()
UNIT = st.floats(0.0, 1.0)


def report(t: float, p99: float, *, objective: float = 25.0, **kw: object) -> FeedbackReport:
    base: dict[str, object] = dict(
        event_time=t, host_id="h", interval_seconds=1.0, latency_p50_ms=p99 / 2,
        latency_p99_ms=p99, latency_objective_ms=objective, resident_memory_bytes=1 << 30,
    )  # fmt: skip
    base.update(kw)
    return FeedbackReport(**base)  # type: ignore[arg-type]


def with_feedback(inp: DecisionInputs, fb: FeedbackReport | None, now: float) -> DecisionInputs:
    age = None if fb is None else max(0.0, now - fb.event_time)
    return msgspec.structs.replace(inp, feedback=fb, feedback_age_seconds=age)


def essentials(d: ScalingDecision) -> tuple[object, ...]:
    return (d.scaling_factor, d.precision_bits, d.batch_size, d.workers, d.memory_budget_bytes,
            d.memory_adjustment, d.confidence, d.quantum_state, d.triggers)  # fmt: skip


def test_no_feedback_and_no_cap_is_no_step() -> None:
    assert track(None, None, PriorState(), planned_factor=1.0, planned_bits=16, top_bits=80,
                 c=C) is None  # fmt: skip


@given(e=UNIT, t=UNIT, p=UNIT, share=st.floats(0.0, 0.79))
def test_headroom_leaves_the_seeds_table_unchanged(e: float, t: float, p: float,
                                                   share: float) -> None:  # fmt: skip
    inp = inputs_for(reference_host(), e, t, p)
    plain, _ = decide(inp, PriorState(), host_id="h", now=1000.0, c=C)
    assert plain is not None
    fast = with_feedback(inp, report(999.0, 25.0 * share, batch_size=plain.batch_size), 1000.0)
    fed, state = decide(fast, PriorState(), host_id="h", now=1000.0, c=C)
    assert fed is not None
    others = essentials(fed)[:2] + essentials(fed)[3:]
    assert others == essentials(plain)[:2] + essentials(plain)[3:]
    # the batch: the planned one, or one interval at half of it to learn the cost per item
    assert fed.batch_size in (plain.batch_size, plain.batch_size // 2)
    assert state.engine_factor_cap is None


def test_a_miss_cuts_the_batch_by_the_model_and_keeps_the_workers() -> None:
    inp = inputs_for(reference_host(), 0.5, 0.2, 0.5)
    first, prior = decide(inp, PriorState(), host_id="h", now=1000.0, c=C)
    assert first is not None
    fb = report(1004.0, 41.0, batch_size=first.batch_size, scaling_factor=first.scaling_factor)
    d, state = decide(with_feedback(inp, fb, 1005.0), prior, host_id="h", now=1005.0, c=C)
    assert d is not None
    # one batch size seen: latency proportional to the batch, aimed at 0.9 of the objective
    assert d.batch_size == int(0.9 * 25.0 / (41.0 / first.batch_size) + 1e-9)
    assert state.engine_batch_cap == d.batch_size
    assert state.cost_points == [(first.batch_size, 41.0)]
    assert (d.scaling_factor, d.workers) == (first.scaling_factor, first.workers)
    text = " ".join(d.reasons)
    assert "Engine p99 41.0 ms above its 25 ms objective" in text
    assert f"(1 point): batch {first.batch_size} -> {d.batch_size}" in text
    assert replay(d, C) == d  # the report and the window travel with it: it replays exactly


def test_a_miss_no_batch_can_fix_cuts_the_factor_and_workers() -> None:
    inp = inputs_for(reference_host(), 0.5, 0.2, 0.5)
    first, prior = decide(inp, PriorState(), host_id="h", now=1000.0, c=C)
    assert first is not None
    n = first.batch_size  # the engine allows nothing smaller
    fb = report(1004.0, 41.0, batch_size=n, scaling_factor=first.scaling_factor, batch_min=n)
    d, state = decide(with_feedback(inp, fb, 1005.0), prior, host_id="h", now=1005.0, c=C)
    assert d is not None and d.batch_size == n
    step = 0.9 * 25.0 / 41.0
    assert state.engine_factor_cap == pytest.approx(first.scaling_factor * step)
    text = " ".join(d.reasons)
    assert "even at the engine's minimum batch" in text and "by engine latency" in text
    assert f"no batch down to the engine's minimum {n}" in text
    assert replay(d, C) == d
    # the factor and workers come down through the stabiliser's window, not at once
    later = report(1040.0, 41.0, batch_size=n, scaling_factor=d.scaling_factor, batch_min=n)
    d2, _ = decide(with_feedback(inp, later, 1040.0), state, host_id="h", now=1040.0, c=C)
    assert d2 is not None and d2.scaling_factor < first.scaling_factor
    assert d2.workers <= first.workers


def test_memory_near_the_limit_lowers_precision_and_budget_at_once() -> None:
    inp = inputs_for(reference_host(), 0.5, 0.2, 0.5)
    first, prior = decide(inp, PriorState(), host_id="h", now=1000.0, c=C)
    assert first is not None and first.precision_bits == 16
    fb = report(1004.0, 10.0, resident_memory_bytes=int(0.95 * GIB), memory_limit_bytes=GIB,
                store_bytes=600 << 20, precision_bits=16)  # fmt: skip
    d, state = decide(with_feedback(inp, fb, 1005.0), prior, host_id="h", now=1005.0, c=C)
    assert d is not None and d.urgent
    assert d.precision_bits == 8
    excess = int(0.95 * GIB) - int(0.75 * GIB)
    assert d.memory_budget_bytes == (600 << 20) - excess == state.engine_budget_cap
    assert "95% of its 1024 MiB limit: precision block16 -> block8" in " ".join(d.reasons)


def test_stale_feedback_lifts_the_caps() -> None:
    inp = inputs_for(reference_host(), 0.5, 0.2, 0.5)
    prior = PriorState(scaling_factor=0.5, precision_bits=16, sequence=3, decided_at=900.0,
                       engine_factor_cap=0.5, engine_batch_cap=100, feedback_at=900.0,
                       cost_points=[(100, 30.0)])  # fmt: skip
    old = report(900.0, 41.0)
    d, state = decide(with_feedback(inp, old, 1000.0), prior, host_id="h", now=1000.0, c=C,
                      stabilize=False)  # fmt: skip
    assert d is not None and d.batch_size > 100
    assert state.engine_factor_cap is None and state.engine_batch_cap is None
    assert state.cost_points is msgspec.UNSET
    assert "No fresh engine feedback: engine caps lifted, cost model reset." in d.reasons


@given(
    steps=st.lists(
        st.tuples(UNIT, UNIT, UNIT, st.floats(25.01, 500.0), st.floats(0.5, 20.0)),
        min_size=2, max_size=30,
    ),
)  # fmt: skip
def test_factor_never_rises_while_the_objective_is_missed(
    steps: list[tuple[float, float, float, float, float]],
) -> None:
    host = reference_host()
    prior, now = PriorState(), 1000.0
    d0, prior = decide(inputs_for(host, 0.5, 0.2, 0.5), prior, host_id="h", now=now, c=C)
    assert d0 is not None
    factor, batch, missed_seen = d0.scaling_factor, d0.batch_size, 0
    for e, t, p, p99, dt in steps:
        now += dt
        fb = report(now - dt / 2, p99, batch_size=batch, scaling_factor=factor)
        inp = with_feedback(inputs_for(host, e, t, p), fb, now)
        d, prior = decide(inp, prior, host_id="h", now=now, c=C)
        if d is not None:
            assert d.scaling_factor <= factor + 1e-12, d.reasons
            factor, batch = d.scaling_factor, d.batch_size
        missed_seen += 1
    assert missed_seen == len(steps)


def simulate(a_ms: float, b_ms: float, objective: float, n: int = 120) -> list[ScalingDecision]:
    """An engine whose p99 is a + b·batch, reporting every 5 s, adopting each decision."""
    host = cpu_only_host()
    inp = inputs_for(host, 0.5, 0.2, 0.5)
    prior, now = PriorState(), 1000.0
    d, prior = decide(inp, prior, host_id="h", now=now, c=C)
    assert d is not None
    out = [d]
    for _ in range(n):
        now += 5.0
        p99 = a_ms + b_ms * d.batch_size
        fb = report(now - 0.1, p99, objective=objective, batch_size=d.batch_size,
                    scaling_factor=d.scaling_factor)  # fmt: skip
        nxt, prior = decide(with_feedback(inp, fb, now), prior, host_id="h", now=now, c=C)
        if nxt is not None:
            d = nxt
        out.append(d)
    return out


def reversals(xs: list[float]) -> int:
    moves = [b - a for a, b in pairwise(xs) if b != a]
    return sum(1 for x, y in pairwise(moves) if (x > 0) != (y > 0))


@given(
    floor_share=st.floats(0.0, 0.7),
    overload=st.floats(1.2, 40.0),
    objective=st.floats(5.0, 200.0),
)
def test_converges_without_a_limit_cycle_on_a_batch_bound_engine(
    floor_share: float, overload: float, objective: float
) -> None:
    a = floor_share * objective  # per-batch overhead below the target
    full = 65536  # the decision's batch on this host with no feedback
    b = (overload * objective - a) / full  # at the full batch the engine is `overload` x slow
    run = simulate(a, b, objective)
    p99 = [a + b * d.batch_size for d in run]
    assert p99[-1] <= objective  # the objective is met ...
    tail = run[-40:]
    assert len({(d.batch_size, d.scaling_factor) for d in tail}) == 1  # ... and it settled
    assert reversals([float(d.batch_size) for d in run]) == 0  # monotone: no limit cycle
    assert reversals([d.scaling_factor for d in run]) == 0
    assert len({d.batch_size for d in run}) <= 3  # the plan, the first cut, the fitted size


def test_a_fast_engine_lets_the_factor_follow_the_market() -> None:
    host = reference_host()
    prior = PriorState()
    got = []
    for i, e in enumerate([0.5, 0.5, 0.95, 0.95, 0.95]):
        now = 1000.0 + 10 * i
        fb = report(now - 1, 5.0)
        d, prior = decide(with_feedback(inputs_for(host, e, 0.2, 0.5), fb, now), prior,
                          host_id="h", now=now, c=C)  # fmt: skip
        if d is not None:
            got.append(d.scaling_factor)
    assert got[0] == 1.0 and got[-1] > 1.3
