"""Precision tiers and the seed's rule for choosing one.

The seed's "81-bit" tier does not exist in IEEE 754; the widest type numpy offers is
``numpy.longdouble``, which is the 80-bit x87 extended format on x86-64 Linux (64-bit mantissa)
and plain float64 elsewhere (ARM64, Windows). We report which one the platform gave.

Rule (docs/decision.md has the table):
    profit >= high_value (0.8)  -> top tier;  profit <= low_value (0.3) -> 8-bit;  else 16-bit
    market entropy >= high_volatility (0.8)  -> one tier up
    thermal >= hot (0.8) -> one tier down;  thermal >= very_hot (0.9) -> two tiers down
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

from shared.config import DecisionConstants
from shared.tiers import ALL_BITS, TIERS, Bits

TIER_NAMES: dict[int, str] = {t.bits: t.name for t in TIERS}


def platform_top_bits() -> Literal[64, 80]:
    """80 when numpy.longdouble is x87 extended (64 mantissa bits), else 64."""
    return 80 if np.finfo(np.longdouble).nmant >= 63 else 64


@functools.cache  # pure; asked for on every decision, with one of two values
def ladder(top_bits: int) -> tuple[Bits, ...]:
    return tuple(b for b in ALL_BITS if b <= top_bits)


def choose_precision(
    entropy: float, profit: float, thermal: float, top_bits: int, c: DecisionConstants
) -> Bits:
    steps = ladder(top_bits)
    if profit >= c.high_value_threshold:
        idx = len(steps) - 1
    elif profit <= c.low_value_threshold:
        idx = 0
    else:
        idx = 1
    if entropy >= c.high_volatility_threshold:
        idx += 1
    if thermal >= c.very_hot_threshold:
        idx -= 2
    elif thermal >= c.hot_threshold:
        idx -= 1
    return steps[min(len(steps) - 1, max(0, idx))]
