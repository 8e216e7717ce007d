"""Precision codecs: error bounds hold on random and real series; memory per value is nominal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shared.codecs import (
    BLOCK,
    decode,
    decode_extended,
    encode,
    measured_error,
    nominal_bytes,
    reencode,
)
from shared.precision import platform_top_bits
from tests.support.data import sp500_close, tick_like, wti

REAL = {"sp500": sp500_close, "wti": wti, "ticks": tick_like}


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize(("bits", "target"), [(16, 1e-4), (8, 1e-2)])
def test_targets_on_real_series(name: str, bits: int, target: float) -> None:
    x = REAL[name]()
    x = x[np.isfinite(x) & (x > 0)]  # WTI went negative once (April 2020 is not in this file)
    enc = encode(x, bits)
    abs_err, rel_err = measured_error(x, enc)
    assert rel_err <= enc.rel_error <= target  # measured <= published <= target
    assert abs_err <= enc.abs_error
    per_value = enc.nbytes / x.size
    assert per_value <= nominal_bytes(bits) * 1.10  # block metadata included


def test_float16_breaks_prices_and_block16_does_not() -> None:
    assert float(np.float16(43_210.55)) == 43_200.0
    assert abs(decode(encode([43_210.55], 16))[0] - 43_210.55) < 43_210.55 * 1e-6


def test_top_tier_is_what_the_platform_has() -> None:
    x = np.array([1 / 3, 43_210.55, -1e300])
    enc = encode(x, 80)
    assert enc.bits == platform_top_bits()
    assert np.array_equal(decode(enc), x)
    if enc.bits == 80:
        assert enc.nbytes == 10 * x.size  # the 10 significant bytes of x87 extended
        assert decode_extended(enc).dtype == np.longdouble


finite = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False, width=64)


@given(
    x=hnp.arrays(np.float64, st.integers(1, 3 * BLOCK), elements=finite | st.just(np.nan)),
    bits=st.sampled_from([8, 16, 32, 64, 80]),
)
def test_published_bound_holds_for_any_series(x: np.ndarray, bits: int) -> None:  # type: ignore[type-arg]
    enc = encode(x, bits)
    d = decode(enc)
    assert np.array_equal(np.isnan(d), np.isnan(x))  # gaps stay gaps, nothing invented
    assert not np.isinf(d).any()
    abs_err, _ = measured_error(x, enc)
    assert abs_err <= enc.abs_error * (1 + 1e-12) + 1e-300
    if enc.block_error is not None:
        ok = ~np.isnan(x)
        per_block = np.zeros(enc.block_error.size)
        err = np.where(ok, np.abs(d - x), 0.0)
        padded = np.zeros(enc.block_error.size * BLOCK)
        padded[: err.size] = err
        per_block = padded.reshape(-1, BLOCK).max(axis=1)
        assert np.all(per_block <= enc.block_error * (1 + 1e-12) + 1e-300)


@given(level=finite, n=st.integers(1, 2000), bits=st.sampled_from([8, 16]))
def test_constant_runs_are_exact(level: float, n: int, bits: int) -> None:
    x = np.full(n, level)
    assert np.array_equal(decode(encode(x, bits)), x)


@given(
    base=st.floats(1e-3, 1e12), steps=hnp.arrays(np.float64, st.integers(2, 2000),
                                                  elements=st.floats(-1e-3, 1e-3)),
)  # fmt: skip
def test_price_like_series_meet_the_relative_targets(base: float, steps: np.ndarray) -> None:  # type: ignore[type-arg]
    x = base * np.exp(np.cumsum(steps))  # prices: positive, moving a little each step
    for bits, target in ((16, 1e-4), (8, 1e-2)):
        enc = encode(x, bits)
        assert measured_error(x, enc)[1] <= enc.rel_error <= target


def test_reencode_composes_bounds() -> None:
    x = sp500_close()
    e16 = encode(x, 16)
    e8 = reencode(e16, 8)
    assert measured_error(x, e8)[0] <= e8.abs_error
    assert e8.abs_error >= e16.abs_error and e8.nbytes < e16.nbytes


def test_float32_tier_never_invents_infinity() -> None:
    x = np.array([1.0, 1e300, -1e39])
    enc = encode(x, 32)
    assert enc.bits == 64 and np.array_equal(decode(enc), x)  # kept exact instead


def test_rejects_infinity_and_unknown_tiers() -> None:
    with pytest.raises(ValueError, match="infinity"):
        encode([1.0, np.inf], 16)
    with pytest.raises(ValueError, match="unknown precision tier 12"):
        encode([1.0], 12)
