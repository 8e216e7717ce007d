"""The decision core: (inputs, prior state, now) -> ScalingDecision, pure and deterministic.

    excess(x)  = clamp((x - H) / (1 - H), 0, 1)        H = TENSOR_HARMONIC_THRESHOLD (0.6)
    raw        = (1 + 0.5 excess(entropy) + 0.8 excess(profit)) * (1 - 0.3 excess(thermal))
    ceiling(t) = 1 + (MAX - 1) * clamp((0.9 - t) / (0.9 - H), 0, 1)      thermal safety
    hw_cap     = 1.8 + (MAX - 1.8) * coherence_score                     what the host carries
    mem_cap    = 1.0 when available RAM < 10 % of effective RAM, else MAX
    factor     = clamp(min(raw, ceiling, hw_cap, mem_cap), MIN, MAX)

Every input at or below H leaves the factor at exactly 1.0. At 0.8 (the seed's "high"):
entropy 1.25, profit 1.40, thermal 0.85; at 1.0: 1.5, 1.8, 0.7. The factor is non-decreasing in
entropy and profit and non-increasing in thermal, and never above 1.0 from thermal 0.9 up.
docs/decision.md derives the gains from the seed's table.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import msgspec

from shared import feedback
from shared.config import DecisionConstants
from shared.messages import DecisionInputs, PriorState, ScalingDecision, Trigger
from shared.precision import TIER_NAMES, choose_precision
from shared.stability import smooth, stabilise

TWO_PI = 2 * math.pi


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """The unstabilised target for one set of inputs."""

    scaling_factor: float
    precision_bits: int
    limited_by: str  # "inputs", "thermal safety", "hardware capacity", "memory pressure"


def _check_unit(name: str, value: float) -> float:
    if type(value) is float and 0.0 <= value <= 1.0:  # the common case; NaN and inf fail it
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def check_inputs(market_entropy: float, thermal_state: float, profit_potential: float) -> None:
    _check_unit("market_entropy", market_entropy)
    _check_unit("thermal_state", thermal_state)
    _check_unit("profit_potential", profit_potential)


def excess(x: float, c: DecisionConstants) -> float:
    h = c.tensor_harmonic_threshold
    return min(1.0, max(0.0, (x - h) / (1.0 - h)))


def plan(inp: DecisionInputs, c: DecisionConstants) -> Plan:
    check_inputs(inp.market_entropy, inp.thermal_state, inp.profit_potential)
    thermal = 1.0 if inp.thermal_throttling else inp.thermal_state
    raw = (
        1.0
        + c.entropy_gain * excess(inp.market_entropy, c)
        + c.profit_gain * excess(inp.profit_potential, c)
    ) * (1.0 - c.thermal_cut * excess(thermal, c))
    span = max(1e-9, c.thermal_safety_state - c.tensor_harmonic_threshold)
    cool = min(1.0, max(0.0, (c.thermal_safety_state - thermal) / span))
    cap = 1.0 + (c.max_scaling_factor - 1.0) * cool
    limited_by = "thermal safety"
    hw_cap = 1.8 + max(0.0, c.max_scaling_factor - 1.8) * inp.coherence_score
    if hw_cap < cap:
        cap, limited_by = hw_cap, "hardware capacity"
    if (
        cap > 1.0
        and inp.memory_available_bytes is not None
        and inp.effective_memory_bytes > 0
        and inp.memory_available_bytes / inp.effective_memory_bytes < c.memory_pressure_floor
    ):
        cap, limited_by = 1.0, "memory pressure"
    factor = raw if raw <= cap else cap
    factor = min(c.max_scaling_factor, max(c.min_scaling_factor, factor))
    bits = choose_precision(
        inp.market_entropy, inp.profit_potential, thermal, inp.top_precision_bits, c
    )
    return Plan(
        scaling_factor=factor,
        precision_bits=bits,
        limited_by=limited_by if raw > cap else "inputs",
    )


def _capped(p: Plan, fb: feedback.FeedbackStep) -> Plan:
    """The plan under the engine's caps: each only lowers, so the other caps still win."""
    factor, bits, limited_by = p.scaling_factor, p.precision_bits, p.limited_by
    if fb.factor_cap is not None and fb.factor_cap < factor:
        factor, limited_by = fb.factor_cap, "engine latency"
    if fb.bits_cap is not None and fb.bits_cap < bits:
        bits = fb.bits_cap
    if (factor, bits) == (p.scaling_factor, p.precision_bits):
        return p
    return Plan(scaling_factor=factor, precision_bits=bits, limited_by=limited_by)


def freshness(age: float | None, c: DecisionConstants) -> float:
    """1 while an input is younger than the staleness limit, then limit/age."""
    if age is None:
        return c.missing_input_confidence
    return 1.0 if age <= c.staleness_seconds else c.staleness_seconds / age


@lru_cache(maxsize=4096)  # pure: a host's phase never changes while its fingerprint stands
def _phase(seed: str) -> float:
    return int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) / 2**32 * TWO_PI


def _sizing(
    inp: DecisionInputs, factor: float, bits: int, c: DecisionConstants
) -> tuple[float, int, int, int]:
    mem_adj = min(c.max_memory_adjustment, max(c.min_memory_adjustment, factor))
    budget = int(inp.effective_memory_bytes * c.memory_budget_share * mem_adj)
    if inp.memory_available_bytes is not None:
        budget = min(budget, int(inp.memory_available_bytes * 0.9))
    free = inp.gpu_free_bytes
    if free is None:
        free = inp.memory_available_bytes
    if free is None:
        free = inp.effective_memory_bytes // 2
    item = c.bytes_per_item * bits / 32.0
    batch = int(c.batch_memory_share * free / item * min(1.0, factor))
    batch = min(c.max_batch_size, max(1, batch))
    cores = max(1.0, inp.effective_cores)
    workers = min(max(1, math.floor(cores)), max(1, round(cores * 0.5 * factor)))
    return mem_adj, max(0, budget), batch, workers


def _explain(
    inp: DecisionInputs, p: Plan, factor: float, bits: int, c: DecisionConstants
) -> tuple[list[Trigger], list[str]]:
    h = c.tensor_harmonic_threshold
    triggers: list[Trigger] = []
    reasons: list[str] = []
    if inp.hardware_changed:
        triggers.append("hardware_observer")
        reasons.append(
            f"Hardware changed (fingerprint now {(inp.fingerprint or '?')[:12]}): re-planned at "
            f"once with coherence {inp.coherence_score:.3f}."
        )
    if inp.market_entropy > h:
        triggers.append("market_entropy")
        reasons.append(
            f"Market entropy {inp.market_entropy:.2f} is above the normal band ({h:.2f}): "
            f"x{1 + c.entropy_gain * excess(inp.market_entropy, c):.2f} on the factor"
            + (
                ", one precision tier up."
                if inp.market_entropy >= c.high_volatility_threshold
                else "."
            )
        )
    if inp.thermal_state > h or inp.thermal_throttling:
        triggers.append("thermal_mirror")
        what = (
            "hardware reports heat throttling"
            if inp.thermal_throttling
            else (f"thermal state {inp.thermal_state:.2f} is above the normal band ({h:.2f})")
        )
        reasons.append(
            f"The {what}: x{1 - c.thermal_cut * excess(inp.thermal_state, c):.2f} on the factor"
            + (", precision lowered." if inp.thermal_state >= c.hot_threshold else ".")
        )
    if inp.profit_potential > h:
        triggers.append("profit_harmonic")
        reasons.append(
            f"Profit potential {inp.profit_potential:.2f} is above the normal band ({h:.2f}): "
            f"x{1 + c.profit_gain * excess(inp.profit_potential, c):.2f} on the factor"
            + (
                ", top precision tier for this high-value period."
                if inp.profit_potential >= c.high_value_threshold
                else "."
            )
        )
    if not triggers:
        reasons.append(f"All inputs in the normal band (<= {h:.2f}): factor {factor:.2f}.")
    if p.limited_by != "inputs":
        reasons.append(f"Factor capped at {p.scaling_factor:.2f} by {p.limited_by}.")
    if not math.isclose(factor, p.scaling_factor, abs_tol=1e-12):
        reasons.append(
            f"Stabiliser moved the factor to {factor:.2f} (target {p.scaling_factor:.2f}): "
            "bounded step or scale-down window."
        )
    reasons.append(f"Precision {TIER_NAMES[bits]} ({bits}-bit).")
    return triggers, reasons


def decide(
    inp: DecisionInputs,
    prior: PriorState,
    *,
    host_id: str,
    now: float,
    c: DecisionConstants,
    stabilize: bool = True,
) -> tuple[ScalingDecision | None, PriorState]:
    """One evaluation. Returns (decision or None when the stabiliser holds, the new state)."""
    if not math.isfinite(now) or now < 0:
        raise ValueError(f"now must be a finite Unix time, got {now!r}")
    check_inputs(inp.market_entropy, inp.thermal_state, inp.profit_potential)
    acted, prior_now = smooth(inp, prior, now, c) if stabilize else (inp, prior)
    p = plan(acted, c)
    fb = feedback.track(
        inp.feedback, inp.feedback_age_seconds, prior,
        planned_factor=p.scaling_factor, planned_bits=p.precision_bits,
        top_bits=inp.top_precision_bits, c=c,
    )  # fmt: skip
    if fb is not None:
        p = _capped(p, fb)
    thermal = 1.0 if inp.thermal_throttling else inp.thermal_state
    urgent = inp.hardware_changed or (
        thermal >= c.hot_threshold
        and prior.scaling_factor is not None
        and p.scaling_factor < prior.scaling_factor
    )
    if fb is not None and fb.urgent:
        urgent = True
    step = stabilise(
        p.scaling_factor,
        p.precision_bits,
        prior_now,
        now=now,
        urgent=urgent,
        stabilize=stabilize,
        c=c,
    )
    sized = None
    if fb is not None:
        planned_batch = _sizing(inp, step.factor, step.bits, c)[2]
        sized = feedback.size_batch(fb, inp.feedback, prior, planned_batch, c)
        before = prior.engine_batch_cap if prior.engine_batch_cap is not None else planned_batch
        if step.publish is False and (fb.changed or sized.batch != before):
            step = msgspec.structs.replace(step, publish=True)  # a new cap is news to the engine
    if step.publish is False:
        if fb is not None and sized is not None and fb.new_report:
            # held: the report's point is still learned (once), the caps did not move
            return None, msgspec.structs.replace(
                step.state, feedback_at=fb.feedback_at, cost_points=sized.points
            )
        return None, step.state

    fresh = [
        freshness(a, c)
        for a in (inp.entropy_age_seconds, inp.profit_age_seconds, inp.sensors_age_seconds)
    ]
    conflict = thermal >= c.hot_threshold and (
        inp.profit_potential >= c.high_value_threshold
        or inp.market_entropy >= c.high_volatility_threshold
    )
    confidence = math.prod(fresh) * (1.0 if inp.fingerprint else 0.5) * (0.9 if conflict else 1.0)
    confidence *= inp.market_confidence  # an entropy estimate still warming up
    if inp.fingerprint is None:
        state = "SUPERPOSITION"
    elif inp.hardware_changed:
        state = "COLLAPSED"
    elif min(fresh) < c.observer_effect_threshold or conflict:
        state = "DECOHERENT"
    else:
        state = "COHERENT" if confidence >= c.quantum_coherence_threshold else "DECOHERENT"

    factor, bits = step.factor, step.bits
    mem_adj, budget, batch, workers = _sizing(inp, factor, bits, c)
    triggers, reasons = _explain(acted, p, factor, bits, c)
    if inp.market_note:
        reasons = [*reasons, inp.market_note]
    state_caps: dict[str, object] = {}
    if fb is not None and sized is not None:
        batch = sized.batch  # the cost model's, within the engine's bounds and the memory plan
        budget_cap = fb.budget_cap
        if budget_cap is not None and budget_cap < budget:
            budget = budget_cap
        elif budget_cap is not None and fb.memory_note is None:
            budget_cap = None  # risen back above the planned budget: lifted
        reasons += feedback.reasons(fb, sized, factor=factor, workers=workers)
        state_caps = {
            "feedback_at": fb.feedback_at,
            "engine_factor_cap": fb.factor_cap,
            "engine_batch_cap": sized.engine_batch,
            "engine_budget_cap": budget_cap,
            "engine_bits_cap": fb.bits_cap,
            "cost_points": sized.points,
        }
    fp = inp.fingerprint or ""
    phase = (_phase(fp) + inp.harmonic_coherence * TWO_PI) % TWO_PI
    # Spread a fleet's *changes*; the first decision and urgent ones go out at once.
    first = prior.scaling_factor is None
    jitter = 0.0 if urgent or first else c.max_jitter_seconds * _phase(host_id + fp) / TWO_PI
    seq = prior.sequence + 1
    decision = ScalingDecision(
        event_time=now,
        host_id=host_id,
        decision_id=f"{host_id}-{round(now * 1000)}-{seq}",
        sequence=seq,
        scaling_factor=factor,
        memory_adjustment=mem_adj,
        memory_budget_bytes=budget,
        precision_bits=bits,  # type: ignore[arg-type]  # ladder values only
        precision_tier=TIER_NAMES[bits],
        batch_size=batch,
        workers=workers,
        confidence=min(1.0, max(0.0, confidence)),
        quantum_state=state,  # type: ignore[arg-type]
        coherence_score=inp.coherence_score,
        entropy_value=1.0 - inp.coherence_score,
        quantum_phase=phase if phase < TWO_PI else 0.0,
        triggers=triggers,
        reasons=reasons,
        apply_after_seconds=jitter,
        urgent=urgent,
        stabilized=stabilize,
        inputs=inp,
        prior=prior,
    )
    new_state = msgspec.structs.replace(
        step.state,
        sequence=seq,
        scaling_factor=factor,
        precision_bits=bits,
        decided_at=now,
        **state_caps,
    )
    return decision, new_state


def replay(decision: ScalingDecision, c: DecisionConstants) -> ScalingDecision:
    """Recompute a published decision from its own inputs and prior state."""
    again, _ = decide(
        decision.inputs,
        decision.prior,
        host_id=decision.host_id,
        now=decision.event_time,
        c=c,
        stabilize=decision.stabilized,
    )
    if again is None:
        raise ValueError(f"decision {decision.decision_id} does not replay to a decision")
    return again
