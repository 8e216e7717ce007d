"""The stabiliser ("quantum error correction"): noisy inputs must not make decisions flap.

- tolerance band: a factor change smaller than ``tolerance`` (0.05) and no precision change is
  not a new decision;
- scale-down window: a decrease goes only down to the highest recommendation seen in the last
  ``scale_down_window_seconds`` (30 s), as Kubernetes' HPA does, so a dip must last the whole
  window to take full effect; precision decreases wait the same way;
- bounded step: one decision moves the factor by at most ``max_step`` (0.5);
- urgent changes (a hardware change, or heat at or above ``hot_threshold`` asking for less)
  skip the window and the step bound: thermal safety and re-plans act at once.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from shared.config import DecisionConstants
from shared.messages import PriorState

MAX_QUEUE = 64
T = TypeVar("T", int, float)


class Step(msgspec.Struct, frozen=True, kw_only=True):
    publish: bool
    factor: float
    bits: int
    state: PriorState


def _push(
    queue: list[tuple[float, T]], now: float, value: T, window: float
) -> list[tuple[float, T]]:
    """Max-queue: drop expired entries and every older entry not above the new value."""
    kept = [(t, v) for t, v in queue if now - t < window]
    while kept and kept[-1][1] <= value:
        kept.pop()
    kept.append((now, value))
    return kept[-MAX_QUEUE:]


def stabilise(
    target: float,
    target_bits: int,
    prior: PriorState,
    *,
    now: float,
    urgent: bool,
    stabilize: bool,
    c: DecisionConstants,
) -> Step:
    window = c.scale_down_window_seconds
    factors = _push(prior.recent_factors, now, target, window)
    bits_q = _push(prior.recent_bits, now, target_bits, window)
    state = msgspec.structs.replace(prior, recent_factors=factors, recent_bits=bits_q)
    last, last_bits = prior.scaling_factor, prior.precision_bits
    if not stabilize or last is None or last_bits is None or urgent:
        return Step(publish=True, factor=target, bits=target_bits, state=state)

    factor = min(last, factors[0][1]) if target < last else target
    factor = min(last + c.max_step, max(last - c.max_step, factor))
    bits = min(last_bits, bits_q[0][1]) if target_bits < last_bits else target_bits
    publish = abs(factor - last) >= c.tolerance or bits != last_bits
    return Step(publish=publish, factor=factor if publish else last, bits=bits, state=state)
