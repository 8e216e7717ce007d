"""core/engine: the adoption gate, the follower, the engine-side store and the reporter."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest

from core.engine import (
    Adopter,
    BatchSizer,
    DecisionFollower,
    EngineClient,
    EngineStore,
    FeedbackReporter,
    PrecisionContext,
)
from core.engine.compute import FLOAT32_UNIT_ROUNDOFF
from core.quantum_auto_scaler import QuantumAutoScaler
from services.bus.memory import MemoryBus
from shared.config import Settings
from shared.csvseries import read_series
from shared.data import SAMPLE
from shared.decision import decide
from shared.messages import FeedbackReport, PriorState, ScalingDecision, decode, encode
from shared.tiers import tier
from tests.support.factories import inputs_for, reference_host

NOW = 1_000_000.0


def decision(t: float = NOW, host: str = "h", p: float = 0.5, seq: int = 1) -> ScalingDecision:
    d, _ = decide(inputs_for(reference_host(), 0.5, 0.2, p), PriorState(), host_id=host, now=t,
                  c=Settings().decision)  # fmt: skip
    assert d is not None
    return msgspec.structs.replace(d, sequence=seq, decision_id=f"{host}-{t}-{seq}")


def test_gate_refuses_other_hosts_unverified_unconfident_stale_and_older() -> None:
    clock = [NOW + 1]

    def verify(d: ScalingDecision) -> str | None:
        return None if d.signature == "ok" else "no valid signature"

    a = Adopter("h", verify=verify, clock=lambda: clock[0])
    ok = msgspec.structs.replace(decision(), signature="ok")
    assert a.check(msgspec.structs.replace(ok, host_id="other")) == "for host other, not h"
    assert a.check(decision()) == "unverified: no valid signature"
    low = msgspec.structs.replace(ok, confidence=0.5)
    assert a.check(low) is not None and "confidence 0.50" in a.check(low)  # type: ignore[operator]
    clock[0] = NOW + 100
    assert "stale" in (a.check(ok) or "")
    clock[0] = NOW + 1
    adopted = a.consider(ok)
    assert adopted is not None and adopted.latency_seconds == pytest.approx(1.0)
    older = msgspec.structs.replace(ok, event_time=NOW - 1, decision_id="older")
    assert a.consider(older) is None and a.last_refusal == "older than the decision already applied"
    assert a.current is adopted


async def test_follower_adopts_the_newest_passing_decision_of_a_batch() -> None:
    bus, s = MemoryBus(), Settings()
    topic = s.topics.decisions
    for t, conf in ((NOW, 1.0), (NOW + 2, 1.0), (NOW + 3, 0.2)):
        d = msgspec.structs.replace(decision(t), confidence=conf)
        await bus.publish(topic, "h", encode(d))
    await bus.publish(topic, "x", encode(decision(NOW + 4, host="x")))
    f = DecisionFollower(bus, s, "h", clock=lambda: NOW + 5)
    got = []
    async for a in f:
        got.append(a)
        f.stop.set()
    assert [a.decision.event_time for a in got] == [NOW + 2]  # newest passing; other host ignored
    assert f.adopter.refused == {"confidence": 1}


async def test_callback_form_and_client_enacts_the_decision() -> None:
    bus, s = MemoryBus(), Settings()
    client = EngineClient(bus, s, "h", clock=lambda: NOW + 1, store_budget_bytes=1 << 20,
                          max_store_bytes=200_000)  # fmt: skip
    seen: list[int] = []
    client.on_adopt = lambda a: (seen.append(a.decision.batch_size), client.stop.set())  # type: ignore[func-returns-value,assignment]
    d = msgspec.structs.replace(decision(p=0.1), batch_size=1234)
    await bus.publish(s.topics.decisions, "h", encode(d))
    await asyncio.wait_for(client.follow(), 10)
    assert seen == [1234] and client.sizer.size == 1234
    assert client.precision.bits == d.precision_bits == 8
    assert client.store.tier == 8 and client.store.budget_bytes == 200_000  # bounded by the engine
    assert client.reporter.decision == d


def test_store_keeps_its_budget_and_its_published_error_bounds_on_the_shipped_data() -> None:
    prices = read_series(SAMPLE).prices
    store = EngineStore(40_000, tier=64, chunk=64, lossless_first=False)  # the lossy pool
    written = 0
    for i, tier_bits in enumerate([64, 32, 16, 8, 16]):
        part = prices[i * 150 : (i + 1) * 150]
        # the last window is high-value: it must come back exact
        store.append("spx", part, value=0.9 if i == 4 else 0.3)
        written += len(part)
        store.flush()
        d = msgspec.structs.replace(decision(), precision_bits=tier_bits,
                                    memory_budget_bytes=6_000 + 2_000 * i)  # fmt: skip
        store.enact(d)
        assert store.pool.nbytes() <= store.budget_bytes == 6_000 + 2_000 * i
    blocks = store.pool.blocks("spx")
    got = store.read("spx")
    exact = prices[:written][-len(got) :]  # evictions take the oldest: what is left is a suffix
    assert len(got) == sum(b.enc.n for b in blocks) <= written
    at = 0
    for b in blocks:  # each block reads back within the bound it publishes
        err = np.abs(got[at : at + b.enc.n] - exact[at : at + b.enc.n])
        assert err.max() <= b.enc.abs_error + 1e-9
        assert (err / np.abs(exact[at : at + b.enc.n])).max() <= b.enc.rel_error + 1e-12
        at += b.enc.n
    assert store.error_bound() == max(b.enc.rel_error for b in blocks) > 0
    assert np.array_equal(store.tail("spx", 150), prices[600:750])  # high-value: exact
    assert any(b.enc.bits == 8 for b in blocks) and blocks[-1].high_value


def test_reporter_summarises_an_interval_and_restarts_on_adoption() -> None:
    t = [NOW]
    r = FeedbackReporter("h", 25.0, memory_limit_bytes=1 << 30, clock=lambda: t[0], rss=lambda: 5)
    for ms in range(1, 101):
        r.record_batch(ms / 1000, 10)
    r.record_late(2)
    t[0] += 2.0
    rep = r.report(store_bytes=7, store_error_bound=0.01)
    assert rep.latency_p99_ms == pytest.approx(99.01) and rep.latency_p50_ms == pytest.approx(50.5)
    assert rep.throughput_per_second == pytest.approx(500.0) and rep.late_ticks == 2
    assert (rep.resident_memory_bytes, rep.memory_limit_bytes, rep.store_bytes) == (5, 1 << 30, 7)
    assert decode(encode(rep), FeedbackReport) == rep
    r.record_batch(0.5, 1)
    r.adopt(decision())
    assert r.batches == 0  # what follows is measured against the new configuration


def test_sizer_and_precision_context() -> None:
    s = BatchSizer(maximum=1000)
    assert s.adopt(msgspec.structs.replace(decision(), batch_size=4096)) == 1000
    assert s.split(2500) == [1000, 1000, 500] and s.ready(1000) and not s.ready(999)
    ctx = PrecisionContext()
    # compute precision is not storage precision: every storage tier computes in float64,
    # the top tier in longdouble
    for bits, dtype in ((80, np.longdouble), (64, np.float64), (32, np.float64), (16, np.float64),
                        (8, np.float64)):  # fmt: skip
        ctx.bits = bits
        assert ctx.asarray([1.5]).dtype == np.dtype(dtype)


@pytest.mark.parametrize("bits", [16, 8])
def test_block_tier_decisions_compute_in_float64(bits: int) -> None:
    ctx = PrecisionContext()
    d = msgspec.structs.replace(decision(), precision_bits=bits)
    assert ctx.adopt(d) == np.dtype(np.float64) and ctx.bits == bits
    assert ctx.asarray(np.arange(3, dtype=np.float32)).dtype == np.float64
    assert ctx.name == tier(bits).name  # the storage tier is still what the context reports


def test_float32_compute_only_within_the_engines_error_budget() -> None:
    d32 = msgspec.structs.replace(decision(), precision_bits=32)
    tight = PrecisionContext(error_budget=FLOAT32_UNIT_ROUNDOFF / 2)
    assert tight.adopt(d32) == np.dtype(np.float64) and not tight.allows_float32
    loose = PrecisionContext(error_budget=1e-6)
    assert loose.adopt(d32) == np.dtype(np.float32)
    assert loose.adopt(msgspec.structs.replace(decision(), precision_bits=16)) == np.float32
    assert loose.adopt(msgspec.structs.replace(decision(), precision_bits=64)) == np.float64
    assert loose.adopt(msgspec.structs.replace(decision(), precision_bits=80)) == np.longdouble
    plain = PrecisionContext(extended=False)
    assert plain.adopt(msgspec.structs.replace(decision(), precision_bits=80)) == np.float64


def test_quantum_auto_scaler_takes_feedback_and_shares_the_gate() -> None:
    q = QuantumAutoScaler(host_id="h")
    first = q.compute_quantum_scaling(0.5, 0.3, 0.5)
    assert q.apply_scaling_decision(first)
    q.report_feedback(FeedbackReport(
        event_time=q.clock(), host_id="h", interval_seconds=1.0, latency_p50_ms=40.0,
        latency_p99_ms=100.0, latency_objective_ms=25.0, resident_memory_bytes=1,
        batch_size=first.batch_size, scaling_factor=first.scaling_factor,
    ))  # fmt: skip
    second = q.compute_quantum_scaling(0.5, 0.3, 0.5)
    # the decider's cost model, one batch size seen: p99 proportional, aimed at 0.9 * 25 ms
    assert second.batch_size == int(0.9 * 25.0 / (100.0 / first.batch_size) + 1e-9)
    assert any("Engine p99 100.0 ms above its 25 ms objective" in r for r in second.reasons)
    assert q.apply_scaling_decision(second)
    assert q.chamber_state.memory_config["batch_size"] == second.batch_size
    assert not q.apply_scaling_decision(msgspec.structs.replace(first, decision_id="again"))


def test_background_client_runs_a_plain_loop_end_to_end() -> None:
    """The README's plain-loop form: QAS in-process on a thread, a synchronous engine loop."""
    import time

    from core.engine import BackgroundClient

    s = Settings(host_id="plain", sensor_interval_seconds=0.2)
    with BackgroundClient(settings=s, host_id="plain", latency_objective_ms=1.0,
                          feedback_interval_seconds=0.2) as qas:  # fmt: skip
        deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
        while qas.current is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert qas.current is not None and qas.current.decision.signature is not None  # verified
        first = qas.sizer.size
        while qas.sizer.size >= first and time.monotonic() < deadline:
            qas.record_batch(0.010, qas.sizer.size)  # 10 ms against a 1 ms objective
            time.sleep(0.02)
        assert qas.sizer.size < first
        assert any("above its 1 ms objective" in r for r in qas.current.decision.reasons)
        assert qas.client.reports[0].latency_p99_ms == pytest.approx(10.0)
