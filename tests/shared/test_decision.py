"""The seed's expected behaviour is acceptance; the properties hold for any input."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import DecisionConstants
from shared.decision import decide, plan, replay
from shared.messages import Inventory, PriorState, ScalingDecision, decode, encode
from tests.support.factories import cpu_only_host, inputs_for, reference_host

C = DecisionConstants()
HOSTS = {"rtx3060ti-8c-32g": reference_host(), "cpu-only-2c-24g": cpu_only_host()}
NORMAL = st.floats(0.0, 0.6)
HIGH = st.floats(0.8, 1.0)
UNIT = st.floats(0.0, 1.0)


def factor(inv: Inventory, e: float, t: float, p: float) -> float:
    return decision(inv, e, t, p).scaling_factor


def decision(inv: Inventory, e: float, t: float, p: float, now: float = 1000.0) -> ScalingDecision:
    d, _ = decide(inputs_for(inv, e, t, p), PriorState(), host_id="h", now=now, c=C)
    assert d is not None
    return d


@pytest.mark.parametrize("host", HOSTS.values(), ids=HOSTS.keys())
@given(e=NORMAL, t=NORMAL, p=NORMAL)
def test_normal_conditions_give_one(host: Inventory, e: float, t: float, p: float) -> None:
    assert factor(host, e, t, p) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("host", HOSTS.values(), ids=HOSTS.keys())
@given(e=HIGH, t=NORMAL, p=NORMAL)
def test_high_market_entropy(host: Inventory, e: float, t: float, p: float) -> None:
    assert 1.2 <= factor(host, e, t, p) <= 1.5


@pytest.mark.parametrize("host", HOSTS.values(), ids=HOSTS.keys())
@given(e=NORMAL, t=HIGH, p=NORMAL)
def test_high_thermal_load(host: Inventory, e: float, t: float, p: float) -> None:
    assert 0.7 <= factor(host, e, t, p) <= 0.9


@pytest.mark.parametrize("host", HOSTS.values(), ids=HOSTS.keys())
@given(e=NORMAL, t=NORMAL, p=HIGH)
def test_high_profit_potential(host: Inventory, e: float, t: float, p: float) -> None:
    assert 1.3 <= factor(host, e, t, p) <= 1.8


@pytest.mark.parametrize("host", HOSTS.values(), ids=HOSTS.keys())
@given(e=UNIT, t=UNIT, p=UNIT)
def test_bounds_always_hold(host: Inventory, e: float, t: float, p: float) -> None:
    d = decision(host, e, t, p)
    assert C.min_scaling_factor <= d.scaling_factor <= C.max_scaling_factor
    assert C.min_memory_adjustment <= d.memory_adjustment <= C.max_memory_adjustment
    assert 0 <= d.confidence <= 1 and 0 <= d.quantum_phase < 2 * math.pi
    assert d.batch_size >= 1 and d.workers >= 1 and d.memory_budget_bytes >= 0
    assert decode(encode(d), ScalingDecision) == d  # publishable


@given(e1=UNIT, e2=UNIT, t=UNIT, p=UNIT)
def test_non_decreasing_in_entropy(e1: float, e2: float, t: float, p: float) -> None:
    lo, hi = sorted((e1, e2))
    assert factor(reference_host(), lo, t, p) <= factor(reference_host(), hi, t, p)


@given(p1=UNIT, p2=UNIT, e=UNIT, t=UNIT)
def test_non_decreasing_in_profit(p1: float, p2: float, e: float, t: float) -> None:
    lo, hi = sorted((p1, p2))
    assert factor(cpu_only_host(), e, t, lo) <= factor(cpu_only_host(), e, t, hi)


@given(t1=UNIT, t2=UNIT, e=UNIT, p=UNIT)
def test_non_increasing_in_thermal(t1: float, t2: float, e: float, p: float) -> None:
    lo, hi = sorted((t1, t2))
    assert factor(reference_host(), e, lo, p) >= factor(reference_host(), e, hi, p)


@given(t=st.floats(0.9, 1.0), e=UNIT, p=UNIT)
def test_thermal_safety_wins(t: float, e: float, p: float) -> None:
    for host in HOSTS.values():
        assert factor(host, e, t, p) <= 1.0


@given(e=UNIT, t=UNIT, p=UNIT)
def test_same_inputs_same_decision(e: float, t: float, p: float) -> None:
    assert decision(reference_host(), e, t, p) == decision(reference_host(), e, t, p)


@pytest.mark.parametrize("name", ["market_entropy", "thermal_state", "profit_potential"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.01, 1.01])
def test_invalid_inputs_raise_clear_value_error(name: str, bad: float) -> None:
    inp = msgspec.structs.replace(inputs_for(reference_host(), 0.5, 0.5, 0.5), **{name: bad})
    with pytest.raises(ValueError, match=name):
        plan(inp, C)


def test_hardware_capacity_caps_the_top_not_the_rows() -> None:
    small = factor(cpu_only_host(), 1.0, 0.0, 1.0)
    assert 1.8 <= small < C.max_scaling_factor  # both high: capped by what the host carries
    assert factor(reference_host(), 1.0, 0.0, 1.0) >= small


def test_memory_pressure_caps_at_one() -> None:
    inv = reference_host()
    inp = inputs_for(inv, 0.5, 0.2, 0.95, memory_available_bytes=inv.memory_total_bytes // 20)
    d, _ = decide(inp, PriorState(), host_id="h", now=1.0, c=C)
    assert d is not None and d.scaling_factor == 1.0
    assert any("memory pressure" in r for r in d.reasons)


@pytest.mark.parametrize(
    ("e", "t", "p", "bits"),
    [
        (0.5, 0.2, 0.5, 16),  # normal trading
        (0.5, 0.2, 0.9, 80),  # high value: top tier (x87 extended here)
        (0.5, 0.2, 0.1, 8),  # low value
        (0.9, 0.2, 0.5, 32),  # high volatility raises
        (0.5, 0.85, 0.5, 8),  # heat lowers
        (0.5, 0.95, 0.9, 32),  # very hot lowers two, even for high value
    ],
)
def test_precision_rule_table(e: float, t: float, p: float, bits: int) -> None:
    assert decision(reference_host(), e, t, p).precision_bits == bits


def test_reasons_name_each_trigger_with_numbers() -> None:
    d = decision(reference_host(), 0.9, 0.85, 0.95)
    assert d.triggers == ["market_entropy", "thermal_mirror", "profit_harmonic"]
    text = " ".join(d.reasons)
    assert "0.90" in text and "0.85" in text and "0.95" in text
    assert d.quantum_state == "DECOHERENT"  # heat against profit: conflicting inputs


def test_quantum_states() -> None:
    inv = reference_host()
    none, _ = decide(
        inputs_for(inv, 0.5, 0.2, 0.5, fingerprint=None), PriorState(), host_id="h", now=1, c=C
    )
    changed, _ = decide(
        inputs_for(inv, 0.5, 0.2, 0.5, hardware_changed=True), PriorState(), host_id="h", now=1, c=C
    )
    stale, _ = decide(
        inputs_for(inv, 0.5, 0.2, 0.5, entropy_age_seconds=60.0),
        PriorState(),
        host_id="h",
        now=1,
        c=C,
    )
    fresh = decision(inv, 0.5, 0.2, 0.5)
    assert none and none.quantum_state == "SUPERPOSITION" and none.confidence <= 0.5
    assert (
        changed
        and changed.quantum_state == "COLLAPSED"
        and changed.triggers == ["hardware_observer"]
    )
    assert stale and stale.quantum_state == "DECOHERENT" and stale.confidence < 0.7
    assert fresh.quantum_state == "COHERENT" and fresh.confidence == 1.0


def test_batch_fills_80_percent_of_free_gpu_memory() -> None:
    c = DecisionConstants(max_batch_size=10**9)
    inv = reference_host()
    free = 6 * 2**30
    d, _ = decide(
        inputs_for(inv, 0.5, 0.2, 0.5, gpu_free_bytes=free), PriorState(), host_id="h", now=1, c=c
    )
    item = c.bytes_per_item * 16 / 32  # 16-bit tier halves the item
    assert d is not None and d.batch_size == int(0.8 * free / item)


def test_decision_replays_field_for_field() -> None:
    prior = PriorState()
    inv = reference_host()
    log: list[ScalingDecision] = []
    for i, (e, t, p) in enumerate(
        [(0.5, 0.2, 0.5), (0.9, 0.2, 0.5), (0.5, 0.2, 0.95), (0.5, 0.95, 0.95), (0.2, 0.2, 0.1)]
    ):
        d, prior = decide(inputs_for(inv, e, t, p), prior, host_id="h", now=100.0 + 40 * i, c=C)
        if d is not None:
            log.append(decode(encode(d), ScalingDecision))  # as a consumer of the topic sees it
    assert len(log) >= 4
    for d in log:
        assert replay(d, C) == d
