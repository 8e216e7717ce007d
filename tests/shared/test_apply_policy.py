"""shared/apply_policy.py: the applier's gate (confidence, age, order) and the engine config."""

from __future__ import annotations

import msgspec
import pytest

from shared.apply_policy import apply_delay, engine_config, skip_reason
from shared.config import ApplierConstants, DecisionConstants
from shared.decision import decide
from shared.messages import PriorState, ScalingDecision
from tests.support.factories import inputs_for, reference_host

C = ApplierConstants()  # confidence > 0.7, at most 30 s old
NOW = 10_000.0


def decision(confidence: float = 0.95, event_time: float = NOW, p: float = 0.5) -> ScalingDecision:
    d, _ = decide(inputs_for(reference_host(), 0.5, 0.2, p), PriorState(), host_id="h",
                  now=event_time, c=DecisionConstants())  # fmt: skip
    assert d is not None
    return msgspec.structs.replace(d, confidence=confidence)


def test_a_fresh_confident_newer_decision_is_applied() -> None:
    assert skip_reason(decision(), None, NOW + 1.0, C) is None
    assert skip_reason(decision(), NOW - 1.0, NOW + 1.0, C) is None


@pytest.mark.parametrize("confidence", [0.0, 0.5, 0.7])
def test_confidence_at_or_below_the_threshold_is_skipped(confidence: float) -> None:
    reason = skip_reason(decision(confidence), None, NOW, C)
    assert reason == f"confidence {confidence:.2f} is not above 0.70"


def test_confidence_just_above_the_threshold_passes() -> None:
    assert skip_reason(decision(0.71), None, NOW, C) is None


def test_age_limit_is_inclusive_and_configurable() -> None:
    d = decision()
    assert skip_reason(d, None, NOW + 30.0, C) is None
    reason = skip_reason(d, None, NOW + 30.5, C)
    assert reason is not None and reason.startswith("stale: decided 30.5 s ago (limit 30 s)")
    assert skip_reason(d, None, NOW + 5.0, ApplierConstants(max_decision_age_seconds=2.0))


def test_not_newer_than_the_applied_one_is_skipped() -> None:
    d = decision()
    assert skip_reason(d, NOW, NOW, C) == "older than the decision already applied"
    assert skip_reason(d, NOW + 1.0, NOW + 2.0, C) == "older than the decision already applied"


def test_reasons_are_checked_in_order_confidence_age_order() -> None:
    d = decision(confidence=0.1)  # fails all three
    first = skip_reason(d, NOW + 100.0, NOW + 100.0, C)
    assert first is not None and first.startswith("confidence")
    second = skip_reason(decision(), NOW + 100.0, NOW + 100.0, C)  # stale and older
    assert second is not None and second.startswith("stale")


def test_engine_config_copies_the_decision_figures() -> None:
    d = decision(p=0.9)
    ec = engine_config(d)
    assert (ec.precision_bits, ec.precision_tier) == (d.precision_bits, d.precision_tier)
    assert (ec.batch_size, ec.workers) == (d.batch_size, d.workers)
    assert ec.memory_budget_bytes == d.memory_budget_bytes
    assert ec.scaling_factor == d.scaling_factor


def test_a_decision_for_another_host_is_skipped_with_the_reason() -> None:
    assert skip_reason(decision(), None, NOW + 1.0, C, own_host="h") is None
    reason = skip_reason(decision(), None, NOW + 1.0, C, own_host="other")
    assert reason is not None and "not this host 'other'" in reason


def test_apply_delay_is_the_jitter_capped_by_configuration() -> None:
    d = msgspec.structs.replace(decision(), apply_after_seconds=1e6)
    assert apply_delay(d, NOW, C) == C.max_apply_after_seconds == 30.0
    assert apply_delay(msgspec.structs.replace(d, apply_after_seconds=2.0), NOW + 0.5, C) == 1.5
    assert apply_delay(msgspec.structs.replace(d, apply_after_seconds=2.0), NOW + 9.0, C) == 0.0
