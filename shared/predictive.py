"""The predictive cache rule: reserve top-tier capacity while profit potential is rising.

trend = EWMA(profit, fast) - EWMA(profit, slow), with time constants 5 s and 30 s. Reserve when
the trend is above +0.05 and profit is above the normal band's edge minus 0.1 (0.5): a high-value
period is probably coming. Release when the trend falls below -0.05 or profit falls below 0.4.
In between, keep what is held (hysteresis). Pure: the state is the two averages and a flag.
"""

from __future__ import annotations

import math

from msgspec import Struct


class TrendState(Struct, frozen=True):
    fast: float | None = None
    slow: float | None = None
    at: float | None = None
    reserved: bool = False


FAST_SECONDS = 5.0
SLOW_SECONDS = 30.0
RISING = 0.05
RESERVE_FROM = 0.5
RELEASE_BELOW = 0.4


def update(state: TrendState, profit: float, now: float) -> TrendState:
    if state.at is None or state.fast is None or state.slow is None:
        return TrendState(profit, profit, now, False)
    dt = max(0.0, now - state.at)
    fast = state.fast + (1 - math.exp(-dt / FAST_SECONDS)) * (profit - state.fast)
    slow = state.slow + (1 - math.exp(-dt / SLOW_SECONDS)) * (profit - state.slow)
    trend = fast - slow
    reserved = state.reserved
    if trend > RISING and profit >= RESERVE_FROM:
        reserved = True
    elif trend < -RISING or profit < RELEASE_BELOW:
        reserved = False
    return TrendState(fast, slow, now, reserved)
