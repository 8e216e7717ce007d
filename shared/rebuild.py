"""What a decider restores from the bus before it decides again (pure).

The latest hardware snapshot per host (from the compacted hardware topic) gives it the
fingerprint and memory; the last published decision per host gives the stabiliser's state after
that decision, so smoothing, the scale-down window and the sequence carry on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from shared.config import DecisionConstants
from shared.decision import decide
from shared.messages import Envelope, MarketEntropy, PriorState, ProfitPotential, ScalingDecision

E = TypeVar("E", bound=Envelope)


def latest_per_host(messages: Iterable[E]) -> dict[str, E]:
    """The message with the latest event time for each host (ties: the later one read)."""
    out: dict[str, E] = {}
    for m in messages:
        seen = out.get(m.host_id)
        if seen is None or m.event_time >= seen.event_time:
            out[m.host_id] = m
    return out


def prior_after(decision: ScalingDecision, c: DecisionConstants) -> PriorState:
    """The stabiliser's state right after ``decision`` was made: its own step, replayed."""
    _, state = decide(
        decision.inputs,
        decision.prior,
        host_id=decision.host_id,
        now=decision.event_time,
        c=c,
        stabilize=decision.stabilized,
    )
    return state


def market_inputs(
    decision: ScalingDecision,
) -> tuple[MarketEntropy | None, ProfitPotential | None]:
    """The market inputs the decision was made from, at their own event times (so they go stale
    as they would have); None for an input the decision had not received."""
    inp, t, h = decision.inputs, decision.event_time, decision.host_id
    entropy = None
    if inp.entropy_age_seconds is not None:
        entropy = MarketEntropy(event_time=t - inp.entropy_age_seconds, host_id=h,
                                value=inp.market_entropy, source="rebuilt")  # fmt: skip
    profit = None
    if inp.profit_age_seconds is not None:
        profit = ProfitPotential(event_time=t - inp.profit_age_seconds, host_id=h,
                                 value=inp.profit_potential, source="rebuilt")  # fmt: skip
    return entropy, profit
