"""shared/lossless.py: the ticks and lossless tiers give back every float64 bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shared import codecs, lossless
from shared.csvseries import read_series
from shared.data import SAMPLE
from shared.tiers import BY_NAME, LOSSLESS_TIERS, named

KINDS = ("ticks", "lossless")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))


def _round_trip(x: np.ndarray, kind: str, block: int = lossless.BLOCK) -> codecs.Encoded:
    enc = codecs.encode(x, kind, block)
    assert enc.tier == kind and enc.n == x.size and enc.abs_error == enc.rel_error == 0.0
    assert _same_bits(codecs.decode(enc), x)
    return enc


@st.composite
def grids(draw: st.DrawFn) -> np.ndarray:
    """Integers on a tick 10^-k as float64, with some values off the grid, gaps and -0.0."""
    k = draw(st.integers(0, 9))
    n = draw(st.integers(0, 700))
    ints = draw(hnp.arrays(np.int64, n, elements=st.integers(-(10**12), 10**12)))
    x = ints / 10.0**k
    specials = st.sampled_from([np.nan, -0.0, 0.0, 5e-324, -2.5e-310, 1.0 + 2**-52, np.pi])
    extra = draw(st.lists(st.tuples(st.integers(0, max(0, n - 1)), specials), max_size=20))
    for at, v in extra if n else ():
        x[at] = v
    return x


@settings(max_examples=150, deadline=None)
@given(grids(), st.sampled_from(KINDS), st.sampled_from([1, 7, 256, 4096]))
def test_random_grids_with_exceptions_round_trip_exactly(
    x: np.ndarray, kind: str, block: int
) -> None:
    _round_trip(x, kind, block)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.uint64, st.integers(0, 600)), st.sampled_from(KINDS))
def test_any_finite_bit_pattern_round_trips_incl_nan_payloads(bits: np.ndarray, kind: str) -> None:
    x = bits.view(np.float64).copy()
    x[np.isinf(x)] = 1.0  # infinities are refused (below)
    _round_trip(x, kind, 256)


@pytest.mark.parametrize("kind", KINDS)
def test_nan_payloads_negative_zero_and_subnormals_keep_their_bits(kind: str) -> None:
    raw = np.array([0x7FF8000000000000, 0xFFF8000000000001, 0x7FF0000000000123, 0x8000000000000000,
                    1, 0x800FFFFFFFFFFFFF, 0x3FF0000000000000], dtype=np.uint64)  # fmt: skip
    x = np.tile(raw.view(np.float64), 50)
    _round_trip(x, kind, 256)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("x", [[], [1416.6], [-0.0], [np.nan]], ids=["empty", "one", "-0", "nan"])
def test_empty_and_one_value_blocks(kind: str, x: list[float]) -> None:
    _round_trip(np.array(x, dtype=np.float64), kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("inf", [np.inf, -np.inf])
def test_infinity_is_refused_as_by_every_tier(kind: str, inf: float) -> None:
    x = np.full(300, 10.25)
    x[123] = inf
    with pytest.raises(ValueError, match="series contains infinity") as lossless_err:
        codecs.encode(x, kind)
    with pytest.raises(ValueError) as float32_err:
        codecs.encode(x, 32)
    assert str(lossless_err.value) == str(float32_err.value)


def test_the_tick_is_found_per_block_and_off_grid_values_are_exceptions() -> None:
    cents = np.round(np.linspace(1400.0, 1500.0, 256), 2)
    fifths = np.round(1.1 + np.arange(256) * 1e-5, 5)  # EURUSD-like, 1e-5 pips
    x = np.concatenate([cents, fifths])
    x[10] = np.nan
    x[20] = 1400.123456789012  # off any decimal grid up to 1e-9
    blocks = codecs.encode(x, "ticks", 256).blocks
    assert [b.digits for b in blocks] == [2, 5]
    assert blocks[0].exc_pos is not None and list(blocks[0].exc_pos) == [10, 20]
    assert blocks[1].exc_pos is None
    assert _same_bits(lossless.decode(blocks), x)


def test_a_block_mostly_off_any_grid_goes_to_the_float_codec() -> None:
    x = np.random.default_rng(4).normal(100.0, 1.0, 1000)  # full mantissa
    assert all(b.digits == -1 for b in codecs.encode(x, "ticks", 256).blocks)


def test_a_range_read_decodes_only_its_blocks_and_matches_the_full_decode() -> None:
    x = np.round(np.random.default_rng(2).normal(1400, 30, 5000), 2)
    enc = codecs.encode(x, "ticks", 256)
    for start, stop in ((0, 1), (255, 257), (1000, 4999), (4990, 6000), (300, 300)):
        assert _same_bits(lossless.decode(enc.blocks, start, stop), x[start:stop])


def test_real_prices_take_fewer_bytes_than_float64_exactly() -> None:
    prices = read_series(SAMPLE).prices
    for kind in KINDS:
        enc = _round_trip(prices, kind)
        assert enc.nbytes < prices.nbytes
        assert codecs.measured_error(prices, enc) == (0.0, 0.0)
    assert codecs.encode(prices, "ticks").blocks[0].digits == 6  # the file prints 6 decimals


def test_lossless_tiers_are_named_and_exact_in_the_registry() -> None:
    assert {t.name for t in LOSSLESS_TIERS} == set(KINDS)
    assert all(named(t.name) is t and BY_NAME[t.name].lossless for t in LOSSLESS_TIERS)
    assert not named("block16").lossless
    with pytest.raises(ValueError, match="unknown precision tier 'ticks9'"):
        codecs.encode([1.0], "ticks9")


def test_reencode_between_lossless_and_lossy_tiers() -> None:
    x = np.round(np.random.default_rng(5).normal(1400, 30, 1000), 2)
    enc = codecs.encode(x, "ticks")
    assert codecs.reencode(enc, "ticks") is enc
    lossy = codecs.reencode(enc, 16)
    assert lossy.bits == 16 and lossy.abs_error > 0
    back = codecs.reencode(codecs.encode(x, 64), "lossless")
    assert back.tier == "lossless" and _same_bits(codecs.decode(back), x)
    assert codecs.encode(x, "float32").bits == 32  # a float rung by name
