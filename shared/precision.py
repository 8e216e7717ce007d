"""Precision tiers and the seed's rule for choosing one.

The seed's "81-bit" tier does not exist in IEEE 754; the widest type numpy offers is
``numpy.longdouble``, and what it is depends on the platform: the 80-bit x87 extended format on
x86-64 Linux (64-bit mantissa, 10 significant bytes in 16), IEEE quad precision on aarch64 Linux
(a Raspberry Pi: 112-bit mantissa, all 16 bytes significant, computed in software), and plain
float64 on macOS ARM64 and Windows. ``shared.longdouble`` says which one the platform gave.

Rule (docs/decision.md has the table):
    profit >= high_value (0.8)  -> top tier;  profit <= low_value (0.3) -> 8-bit;  else 16-bit
    market entropy >= high_volatility (0.8)  -> one tier up
    thermal >= hot (0.8) -> one tier down;  thermal >= very_hot (0.9) -> two tiers down
"""

from __future__ import annotations

import functools
from typing import Literal

from shared.config import DecisionConstants
from shared.longdouble import longdouble_format
from shared.tiers import ALL_BITS, TIERS, Bits

TIER_NAMES: dict[int, str] = {t.bits: t.name for t in TIERS}


def platform_top_bits() -> Literal[64, 80]:
    """80 (the seed's top tier) when numpy.longdouble is wider than float64, else 64."""
    return 80 if longdouble_format().significant_bytes > 8 else 64


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
