"""core/engine/memory.py ``step``: the store budget held so the predicted peak stays in the band.

A simulated engine: its own memory (``other``) moves as each test says, its store fills at
``fill`` bytes a second up to the budget the controller set and is cut to it at once (the store's
ladder), and a reading is ``other + store`` (plus noise). The clock is simulated: one step a second.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np
import pytest

from core.engine.client import EngineClient
from core.engine.memory import (
    MemoryConfig,
    MemoryReading,
    MemoryState,
    MemoryStep,
    step,
    theil_sen,
)
from core.engine.store import EngineStore
from services.bus.memory import MemoryBus
from shared.config import DecisionConstants
from shared.decision import decide
from shared.messages import FeedbackReport, PriorState, ScalingDecision, decode
from tests.support.factories import GIB, inputs_for, reference_host

_FIRST, _ = decide(inputs_for(reference_host(), 0.5, 0.2, 0.5), PriorState(), host_id="h",
                   now=1000.0, c=DecisionConstants())  # fmt: skip
assert _FIRST is not None
DECISION: ScalingDecision = _FIRST

MiB = 1 << 20
LIMIT = 160 * MiB
C = MemoryConfig()


def reading(t: float, used: int, limit: int | None = LIMIT, **kw: object) -> MemoryReading:
    src = kw.pop("source", "cgroup-v1" if limit is not None else "rss")
    return MemoryReading(at=t, used_bytes=used, limit_bytes=limit, source=src,  # type: ignore[arg-type]
                         rss_bytes=used, **kw)  # type: ignore[arg-type]  # fmt: skip


@dataclass
class Sim:
    """An engine whose own memory follows ``other(t)``, with a store filling up to the budget."""

    other: Callable[[float], float]
    fill: float = 4 * MiB  # bytes/s the engine appends to its store
    noise: float = 0.0  # uniform +- bytes on each reading
    seed: int = 0
    store: float = 0.0
    state: MemoryState = field(default_factory=MemoryState)
    steps: list[MemoryStep] = field(default_factory=list)
    used: list[float] = field(default_factory=list)  # the true use at each instant

    def run(self, seconds: int, config: MemoryConfig = C) -> list[MemoryStep]:
        rng = random.Random(self.seed)
        for t in range(len(self.steps), len(self.steps) + seconds):
            budget = self.state.budget_bytes
            self.store += self.fill
            if budget is not None:
                self.store = min(self.store, budget)
            use = self.other(t) + self.store
            self.used.append(use)
            seen = int(use + rng.uniform(-self.noise, self.noise))
            self.state, s = step(self.state, reading(float(t), seen), int(self.store), config)
            if s.budget_bytes is not None:
                self.store = min(self.store, s.budget_bytes)  # the ladder meets the budget at once
            self.used[-1] = max(self.used[-1], self.other(t) + self.store)
            self.steps.append(s)
        return self.steps


def true_peak(sim: Sim, t: int, growth: float, config: MemoryConfig = C) -> float:
    """The peak the budget set at ``t`` allows, with the engine's true growth."""
    b = sim.steps[t].budget_bytes
    assert b is not None
    return (sim.other(t) + b + growth * config.horizon_seconds) / LIMIT


def test_steady_growth_keeps_the_predicted_peak_in_the_band_ahead_of_it() -> None:
    g = 0.4 * MiB  # the engine's own memory grows 0.4 MiB/s: from 40 MiB to 120 MiB in 200 s
    sim = Sim(other=lambda t: 40 * MiB + g * t)
    steps = sim.run(200)
    settled = steps[C.window :]
    assert all(abs(s.growth_bytes_per_second - g) < 1e-6 * g for s in settled)
    # with the true growth, the peak each step allows is in the band, never above it
    peaks = [true_peak(sim, t, g) for t in range(C.window, 200)]
    assert min(peaks) >= C.low - 1e-6 and max(peaks) <= C.high + 1e-6
    assert max(sim.used) < C.high * LIMIT  # acts before the limit: use never reaches 95 %
    lowered = [s for s in settled if s.action == "lower"]
    assert lowered and all(s.budget_bytes < s.previous_budget_bytes for s in lowered)  # type: ignore[operator]
    # each lowering lands the prediction on the target
    for s in lowered:
        assert s.predicted_peak_bytes == pytest.approx(C.target * LIMIT, abs=2)
    assert "store budget" in lowered[0].reason and "MB/s" in lowered[0].reason


def test_a_controller_blind_to_growth_would_miss_the_band() -> None:
    # the same run with no horizon: the peak it allows with the true growth leaves the band,
    # so the band test above fails if the prediction drops the growth term
    g = 0.4 * MiB
    blind = MemoryConfig(horizon_seconds=0.0)
    sim = Sim(other=lambda t: 40 * MiB + g * t)
    sim.run(200, blind)
    peaks = [true_peak(sim, t, g) for t in range(C.window, 200)]
    assert max(peaks) > C.high


def test_a_jump_lowers_the_budget_at_once_then_it_settles_without_oscillating() -> None:
    jump = 12 * MiB
    sim = Sim(other=lambda t: 40 * MiB + (jump if t >= 60 else 0))
    steps = sim.run(160)
    before = steps[59].budget_bytes
    at = steps[60]
    assert before is not None and at.budget_bytes is not None
    assert at.action == "lower" and before - at.budget_bytes >= jump
    assert at.predicted_peak_bytes is not None and at.predicted_peak_bytes <= C.high * LIMIT
    assert max(sim.used[60:]) <= LIMIT
    after = [s.budget_bytes for s in steps[60:]]
    rises = [b - a for a, b in itertools.pairwise(after) if b > a]  # type: ignore[operator]
    assert all(r <= C.max_rise * LIMIT for r in rises)
    # settles at the budget of the target, lower than before by the jump, and holds there
    assert steps[-1].budget_bytes == int(C.target * LIMIT - 40 * MiB - jump)
    assert all(s.action == "hold" for s in steps[-20:])


def test_shrinking_use_raises_the_budget_back_boundedly() -> None:
    sim = Sim(other=lambda t: 100 * MiB if t < 30 else 40 * MiB)
    steps = sim.run(120)
    low = steps[29].budget_bytes
    assert low is not None and low == int(C.target * LIMIT - 100 * MiB)
    budgets = [s.budget_bytes for s in steps[29:]]
    deltas = [b - a for a, b in itertools.pairwise(budgets)]  # type: ignore[operator]
    assert max(deltas) <= int(C.max_rise * LIMIT)
    assert all(d >= 0 for d in deltas)  # no step back down on the way up
    assert sum(1 for s in steps[30:] if s.action == "raise") >= 3  # bounded: several steps
    # it rises until the peak is back in the band (not past the target), then holds
    last = steps[-1]
    assert last.budget_bytes is not None and last.predicted_peak_bytes is not None
    assert last.budget_bytes <= int(C.target * LIMIT - 40 * MiB)
    assert C.low * LIMIT <= last.predicted_peak_bytes <= C.high * LIMIT
    assert all(s.action == "hold" for s in steps[-20:])
    assert max(sim.used) <= C.high * LIMIT


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_oscillation_over_1000_steps_on_noisy_readings(seed: int) -> None:
    # readings jitter by +-1.5 % of the limit (2.4 MiB) around a steady engine
    sim = Sim(other=lambda t: 50 * MiB, noise=0.015 * LIMIT, seed=seed)
    steps = sim.run(1000)
    moves = [s for s in steps[C.window :] if s.action != "hold"]
    budgets = [s.budget_bytes for s in steps[C.window :]]
    assert len(moves) <= 5, [m.reason for m in moves]
    spread = max(budgets) - min(budgets)  # type: ignore[type-var,operator]
    assert spread <= 0.06 * LIMIT
    assert max(sim.used) <= C.high * LIMIT


def test_unlimited_controls_nothing() -> None:
    state, s = step(MemoryState(), reading(0.0, 50 * MiB, limit=None), 10 * MiB)
    assert s.action == "unlimited" and s.budget_bytes is None and state.budget_bytes is None
    assert "no limit" in s.reason


def test_use_beyond_the_target_holds_the_floor() -> None:
    _, s = step(MemoryState(), reading(0.0, 150 * MiB), 1 * MiB)
    assert s.budget_bytes == C.floor_bytes and "(the floor)" in s.reason


def test_pressure_lowers_a_step_inside_the_band() -> None:
    state, first = step(MemoryState(), reading(0.0, 80 * MiB, source="cgroup-v2"), 30 * MiB)
    assert first.budget_bytes is not None
    _calm, held = step(state, reading(1.0, 80 * MiB, source="cgroup-v2", pressure=0.01), 30 * MiB)
    assert held.action == "hold"
    _, pressed = step(state, reading(1.0, 80 * MiB, source="cgroup-v2", pressure=0.4), 30 * MiB)
    assert pressed.action == "lower"
    assert pressed.budget_bytes == first.budget_bytes - int(C.max_rise * LIMIT)
    assert "pressure 40%" in pressed.reason


def test_bytes_per_item_from_the_items_counted() -> None:
    state = MemoryState()
    for t in range(6):  # 1 MiB/s while 1000 items/s are computed: 1048.576 B/item
        state, s = step(state, reading(float(t), 40 * MiB + t * MiB), 0, items=1000)
    assert s.bytes_per_item == pytest.approx(MiB / 1000)
    assert "(1049 B/item)" in s.reason


def test_theil_sen_ignores_one_outlier() -> None:
    pts = tuple((float(t), 100 * t + (10_000 if t == 4 else 0)) for t in range(10))
    assert theil_sen(pts) == pytest.approx(100.0)
    assert theil_sen(((0.0, 5),)) == 0.0


# --- in the client: one reading per interval, applied to the store, published ----------------


class Readings:
    def __init__(self, used: int) -> None:
        self.used, self.calls, self.t = used, 0, 0.0

    def __call__(self) -> MemoryReading:
        self.calls += 1
        self.t += 1.0
        return reading(self.t, self.used)


async def test_client_sets_the_store_budget_and_publishes_what_it_did() -> None:
    bus = MemoryBus()
    await bus.start()
    try:
        r = Readings(60 * MiB)
        now = [1000.0]
        client = EngineClient(bus, host_id="h", memory_reader=r, clock=lambda: now[0],
                              store_budget_bytes=512 * MiB, reports_kept=3)  # fmt: skip
        for _ in range(50):
            client.record_batch(0.01, 100)
        assert r.calls == 0  # nothing on the per-batch path
        report = await client.send_feedback()
        assert r.calls == 1
        expect = int(C.target * LIMIT - 60 * MiB)
        assert client.store.budget_bytes == expect == report.store_budget_bytes
        assert client.memory is not None and client.memory.action == "start"
        assert report.memory_source == "cgroup-v1" and report.memory_used_bytes == 60 * MiB
        assert report.memory_limit_bytes == LIMIT
        assert report.memory_note == client.memory.reason
        (record,) = await bus.read_back([client.settings.topics.feedback], 1.0)
        got = decode(record.value, FeedbackReport)
        assert got.store_budget_bytes == expect and got.memory_note == report.memory_note
        # a decided budget above the controller's is capped by it; one below wins
        for _ in range(5):
            client.control_memory()
        assert len(client.memory_steps) == 3  # bounded ring
        assert client.store.budget_bytes == expect
    finally:
        await bus.stop()


def test_older_readers_decode_the_new_report() -> None:
    class OldReport(msgspec.Struct, kw_only=True):  # a reader from before the new fields
        store_bytes: int = 0
        interval_seconds: float

    new = FeedbackReport(event_time=1.0, host_id="h", interval_seconds=1.0, latency_p50_ms=1.0,
                         latency_p99_ms=2.0, latency_objective_ms=25.0, resident_memory_bytes=1,
                         store_bytes=7, store_budget_bytes=9, memory_source="cgroup-v2",
                         memory_note="why")  # fmt: skip
    old = msgspec.json.decode(msgspec.json.encode(new), type=OldReport)
    assert old.store_bytes == 7
    before = msgspec.json.encode(msgspec.structs.replace(new, store_budget_bytes=None,
                                                          memory_source=None, memory_note=None))  # fmt: skip
    assert msgspec.json.decode(before, type=FeedbackReport).store_budget_bytes is None


def test_the_decider_leaves_memory_to_the_engines_controller() -> None:
    inp = inputs_for(reference_host(), 0.5, 0.2, 0.5)
    dc = DecisionConstants()
    first, prior = decide(inp, PriorState(), host_id="h", now=1000.0, c=dc)
    assert first is not None
    base = dict(event_time=1004.0, host_id="h", interval_seconds=1.0, latency_p50_ms=5.0,
                latency_p99_ms=10.0, latency_objective_ms=25.0,
                resident_memory_bytes=int(0.92 * GIB), memory_limit_bytes=GIB,
                store_bytes=600 << 20, precision_bits=16)  # fmt: skip

    def at(**kw: object) -> tuple[int, bool]:
        fb = FeedbackReport(**{**base, **kw})  # type: ignore[arg-type]
        i = msgspec.structs.replace(inp, feedback=fb, feedback_age_seconds=1.0)
        d, _ = decide(i, prior, host_id="h", now=1005.0, c=dc)
        if d is None:  # nothing changed enough to publish: the first decision stands
            return first.memory_budget_bytes, False
        return d.memory_budget_bytes, d.urgent

    cut, urgent = at()
    assert urgent and cut < (600 << 20)  # without a controller the decider cuts at 85 %
    held, calm = at(store_budget_bytes=650 << 20, memory_source="cgroup-v1")
    assert not calm and held == first.memory_budget_bytes


@pytest.mark.parametrize("decided", [8 * MiB, 400 * MiB])
def test_the_controllers_budget_replaces_the_decided_one_under_max_store_bytes(
    decided: int,
) -> None:
    store = EngineStore(64 * MiB, max_budget_bytes=300 * MiB)
    d = msgspec.structs.replace(DECISION, memory_budget_bytes=decided)
    store.enact(d)
    assert store.budget_bytes == min(decided, 300 * MiB)
    store.limit_budget(50 * MiB)
    assert store.budget_bytes == 50 * MiB
    store.enact(d)  # a later decision does not undo it
    assert store.budget_bytes == 50 * MiB
    store.limit_budget(500 * MiB)
    assert store.budget_bytes == 300 * MiB  # max_store_bytes still caps
    store.limit_budget(None)
    assert store.budget_bytes == min(decided, 300 * MiB)  # back to the decided one


def test_the_ladder_meets_a_lowered_budget_losslessly_first() -> None:
    store = EngineStore(64 * MiB, chunk=4096)
    values = np.round(100.0 + 0.01 * np.cumsum(np.random.default_rng(0).integers(-3, 4, 400_000)), 2)
    for i in range(0, len(values), 4096):  # blocks of 4096: all but the newest may compress
        store.append("p", values[i : i + 4096])
    store.flush()
    full = store.nbytes()
    report = store.limit_budget(full // 3)
    assert report.bytes_after <= full // 3 < report.bytes_before
    assert store.pool.evicted == 0 and store.pool.compressed > 0
    assert np.array_equal(store.read("p"), values)  # lossless: every value as appended
