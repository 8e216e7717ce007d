"""The stabiliser ("quantum error correction"): noisy inputs must not make decisions flap.

- tolerance band: a factor change smaller than ``tolerance`` (0.05) and no precision change is
  not a new decision;
- scale-down window: a decrease goes only down to the highest recommendation seen in the last
  ``scale_down_window_seconds`` (30 s), as Kubernetes' HPA does, so a dip must last the whole
  window to take full effect; precision decreases wait the same way;
- bounded step: one decision moves the factor by at most ``max_step`` (0.5);
- input filter: market entropy and profit pass through an EWMA (time constant
  ``smoothing_seconds``, 1 s) before the plan, so sample noise does not reach the factor; thermal
  is not filtered. The window's max-queue spans ``window - smoothing_seconds``, so a real drop
  is followed within one window in total (the filter spends the rest);
- urgent changes (a hardware change, or heat at or above ``hot_threshold`` asking for less)
  skip the window and the step bound: thermal safety and re-plans act at once.
"""

from __future__ import annotations

import math
from typing import TypeVar

import msgspec

from shared.config import DecisionConstants
from shared.messages import DecisionInputs, PriorState

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


def smooth(
    inp: DecisionInputs, prior: PriorState, now: float, c: DecisionConstants
) -> tuple[DecisionInputs, PriorState]:
    """EWMA of entropy and profit; returns (inputs to plan with, state with the new averages)."""
    if prior.smoothed_at is None or prior.smoothed_entropy is None or prior.smoothed_profit is None:
        e, p = inp.market_entropy, inp.profit_potential
    else:
        dt = max(0.0, now - prior.smoothed_at)
        a = 1.0 if c.smoothing_seconds <= 0 else 1.0 - math.exp(-dt / c.smoothing_seconds)
        e = prior.smoothed_entropy + a * (inp.market_entropy - prior.smoothed_entropy)
        p = prior.smoothed_profit + a * (inp.profit_potential - prior.smoothed_profit)
    e, p = min(1.0, max(0.0, e)), min(1.0, max(0.0, p))
    state = msgspec.structs.replace(prior, smoothed_entropy=e, smoothed_profit=p, smoothed_at=now)
    return msgspec.structs.replace(inp, market_entropy=e, profit_potential=p), state


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
    window = max(0.0, c.scale_down_window_seconds - c.smoothing_seconds)
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
