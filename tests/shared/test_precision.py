"""shared/precision.py: the seed's bit-depth rule (docs/decision.md, "Precision tiers")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import DecisionConstants
from shared.longdouble import longdouble_format
from shared.precision import TIER_NAMES, choose_precision, ladder, platform_top_bits

C = DecisionConstants()
unit = st.floats(0.0, 1.0)


def bits(e: float = 0.5, p: float = 0.5, t: float = 0.2, top: int = 80) -> int:
    return choose_precision(e, p, t, top, C)


def test_ladders_for_both_platform_tops() -> None:
    assert ladder(80) == (8, 16, 32, 64, 80)
    assert ladder(64) == (8, 16, 32, 64)


def test_platform_top_bits_follows_numpy_longdouble() -> None:
    expected = 80 if np.finfo(np.longdouble).nmant > 52 else 64
    assert platform_top_bits() == expected


def test_tier_names() -> None:
    top = longdouble_format().tier_name  # extended80 on x86-64, quad128 on aarch64 Linux
    assert TIER_NAMES == {8: "block8", 16: "block16", 32: "float32", 64: "float64", 80: top}


@pytest.mark.parametrize(("p", "top", "expected"), [
    (0.8, 80, 80), (1.0, 80, 80), (0.8, 64, 64),  # high value: the top tier
    (0.3, 80, 8), (0.0, 64, 8),                   # low value: 8-bit
    (0.31, 80, 16), (0.5, 64, 16), (0.79, 80, 16),  # normal trading: 16-bit
])  # fmt: skip
def test_profit_bands(p: float, top: int, expected: int) -> None:
    assert bits(p=p, top=top) == expected


def test_high_volatility_is_one_tier_up() -> None:
    assert bits(e=0.8) == 32 and bits(e=0.79) == 16
    assert bits(e=0.9, p=0.1) == 16
    assert bits(e=0.9, p=0.9) == 80 and bits(e=0.9, p=0.9, top=64) == 64  # clamped at the top


def test_heat_is_one_then_two_tiers_down() -> None:
    assert bits(p=0.9, t=0.79) == 80
    assert bits(p=0.9, t=0.8) == 64 and bits(p=0.9, t=0.8, top=64) == 32
    assert bits(p=0.9, t=0.9) == 32 and bits(p=0.9, t=0.9, top=64) == 16
    assert bits(t=0.8) == 8 and bits(t=1.0) == 8 and bits(p=0.1, t=1.0) == 8  # clamped at 8


def test_volatility_and_heat_combine() -> None:
    assert bits(e=0.9, t=0.85) == 16  # up one, down one
    # clamped once, at the end: top + 1 - 2 is one below the top (not top - 2)
    assert bits(e=0.9, p=0.9, t=0.95) == 64 and bits(e=0.9, p=0.9, t=0.95, top=64) == 32


def test_thresholds_come_from_the_constants() -> None:
    c = DecisionConstants(high_value_threshold=0.6, low_value_threshold=0.1)
    assert choose_precision(0.5, 0.6, 0.2, 80, c) == 80
    assert choose_precision(0.5, 0.2, 0.2, 80, c) == 16


@given(unit, unit, unit, unit, st.sampled_from([64, 80]))
def test_monotone_non_increasing_in_thermal(e: float, p: float, t1: float, t2: float,
                                            top: int) -> None:  # fmt: skip
    lo, hi = sorted((t1, t2))
    assert choose_precision(e, p, hi, top, C) <= choose_precision(e, p, lo, top, C)


@given(unit, unit, unit, unit, st.sampled_from([64, 80]))
def test_monotone_non_decreasing_in_entropy(e1: float, e2: float, p: float, t: float,
                                            top: int) -> None:  # fmt: skip
    lo, hi = sorted((e1, e2))
    assert choose_precision(lo, p, t, top, C) <= choose_precision(hi, p, t, top, C)


@given(unit, unit, unit, unit, st.sampled_from([64, 80]))
def test_monotone_non_decreasing_in_profit(e: float, p1: float, p2: float, t: float,
                                           top: int) -> None:  # fmt: skip
    lo, hi = sorted((p1, p2))
    out = choose_precision(e, lo, t, top, C), choose_precision(e, hi, t, top, C)
    assert out[0] <= out[1] and set(out) <= set(ladder(top))
