"""When the applier enacts a decision: a pure gate over the decision and what was applied."""

from __future__ import annotations

from shared.config import ApplierConstants
from shared.messages import EngineConfig, ScalingDecision


def skip_reason(
    d: ScalingDecision,
    last_applied_time: float | None,
    now: float,
    c: ApplierConstants,
    own_host: str | None = None,
) -> str | None:
    """None to apply, else the reason to skip (checked in this order). ``own_host``: the host
    this applier enacts for; a decision for any other host is never enacted here."""
    if own_host is not None and d.host_id != own_host:
        return f"decision for host {d.host_id[:80]!r}, not this host {own_host[:80]!r}"
    if d.confidence <= c.confidence_threshold:
        return f"confidence {d.confidence:.2f} is not above {c.confidence_threshold:.2f}"
    age = now - d.event_time
    if age > c.max_decision_age_seconds:
        return f"stale: decided {age:.1f} s ago (limit {c.max_decision_age_seconds:g} s)"
    if last_applied_time is not None and d.event_time <= last_applied_time:
        return "older than the decision already applied"
    return None


def engine_config(d: ScalingDecision) -> EngineConfig:
    return EngineConfig(
        precision_bits=d.precision_bits,
        precision_tier=d.precision_tier,
        batch_size=d.batch_size,
        workers=d.workers,
        memory_budget_bytes=d.memory_budget_bytes,
        scaling_factor=d.scaling_factor,
    )


def apply_delay(d: ScalingDecision, now: float, c: ApplierConstants) -> float:
    """How long to wait before enacting: the decision's jitter, capped by configuration."""
    return max(0.0, min(d.event_time + d.apply_after_seconds - now, c.max_apply_after_seconds))
