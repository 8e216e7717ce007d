"""Replay protection (shared/freshness.py): the event-time window and the per-host sequence."""

from __future__ import annotations

import msgspec

from shared.config import ApplierConstants, DecisionConstants
from shared.decision import decide
from shared.freshness import Watermark, freshness_fault, watermark
from shared.messages import PriorState, ScalingDecision
from tests.support.factories import inputs_for, reference_host


def _decision(now: float = 1000.0) -> ScalingDecision:
    d, _ = decide(inputs_for(reference_host(), 0.9, 0.2, 0.5), PriorState(), host_id="h",
                  now=now, c=DecisionConstants(max_jitter_seconds=0.0))  # fmt: skip
    assert d is not None
    return d


C = ApplierConstants()


def test_the_event_time_window_is_30_s_old_and_5_s_ahead_by_default() -> None:
    d = _decision(now=1000.0)
    assert freshness_fault(d, None, 1000.0 + 30.0, C) is None
    assert freshness_fault(d, None, 1000.0 - 5.0, C) is None
    stale = freshness_fault(d, None, 1030.5, C)
    ahead = freshness_fault(d, None, 994.0, C)
    assert stale is not None and stale[0] == "stale"
    assert ahead is not None and ahead[0] == "future"
    narrow = ApplierConstants(max_decision_age_seconds=1.0, max_decision_future_seconds=0.5)
    assert freshness_fault(d, None, 1001.5, narrow) is not None


def test_the_sequence_must_be_newer_than_the_last_applied_within_and_across_epochs() -> None:
    d = msgspec.structs.replace(_decision(), sequence=5, sequence_epoch=100)
    assert watermark(d) == Watermark(100, 5)
    for last, ok in [
        (Watermark(100, 4), True),
        (Watermark(100, 5), False),  # the same one again
        (Watermark(100, 9), False),  # an older one replayed
        (Watermark(99, 50), True),  # a restarted decider (later epoch) starts again at 1
        (Watermark(101, 1), False),  # from before the decider's restart
    ]:
        fault = freshness_fault(d, last, d.event_time, C)
        assert (fault is None) == ok, (last, fault)
        if fault is not None:
            assert fault[0] == "replayed_sequence"
