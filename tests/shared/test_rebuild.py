"""What a restarted decider restores (shared/rebuild.py): pure functions over read-back records."""

from __future__ import annotations

from shared.config import DecisionConstants
from shared.decision import decide
from shared.messages import MarketEntropy, PriorState
from shared.rebuild import latest_per_host, market_inputs, prior_after
from tests.support.factories import inputs_for, reference_host

C = DecisionConstants(max_jitter_seconds=0.0)


def test_latest_per_host_keeps_the_newest_event_of_each_host() -> None:
    msgs = [MarketEntropy(event_time=t, host_id=h, value=v)
            for t, h, v in [(2.0, "a", 0.2), (1.0, "a", 0.1), (5.0, "b", 0.5), (3.0, "a", 0.3)]]  # fmt: skip
    latest = latest_per_host(msgs)
    assert {h: m.value for h, m in latest.items()} == {"a": 0.3, "b": 0.5}


def test_prior_after_a_decision_is_the_state_its_own_step_left() -> None:
    d, state = decide(inputs_for(reference_host(), 0.9, 0.2, 0.9), PriorState(), host_id="h",
                      now=1000.0, c=C)  # fmt: skip
    assert d is not None
    assert prior_after(d, C) == state  # replaying the decision's own step gives the same state


def test_market_inputs_come_back_at_their_own_event_times() -> None:
    inp = inputs_for(reference_host(), 0.9, 0.2, 0.4, entropy_age_seconds=2.0,
                     profit_age_seconds=None)  # fmt: skip
    d, _ = decide(inp, PriorState(), host_id="h", now=1000.0, c=C)
    assert d is not None
    entropy, profit = market_inputs(d)
    assert entropy is not None and entropy.event_time == 998.0 and entropy.value == 0.9
    assert profit is None  # never received: not invented
