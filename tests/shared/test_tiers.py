"""shared/tiers.py: the tier registry agrees with shared/codecs.py on a real price series."""

from __future__ import annotations

import numpy as np
import pytest

from shared import codecs
from shared.csvseries import read_series
from shared.data import SAMPLE
from shared.precision import platform_top_bits
from shared.tiers import ALL_BITS, BY_BITS, TIERS, TierSpec, tier

PRICES = read_series(SAMPLE).prices  # S&P 500 closes, 2007-2009


def test_registry_is_ordered_and_unique() -> None:
    assert ALL_BITS == tuple(sorted(ALL_BITS)) == (8, 16, 32, 64, 80)
    assert len({t.name for t in TIERS}) == len(TIERS)
    assert all(BY_BITS[t.bits] is t and tier(t.bits) is t for t in TIERS)
    assert all(t.nominal_bytes == t.bits / 8 for t in TIERS if t.bits != 80)
    assert BY_BITS[80].nominal_bytes in (10.0, 16.0)  # x87's 10 bytes, or IEEE quad's 16


def test_series_is_real() -> None:
    assert PRICES.size > 700 and np.all(PRICES > 600) and np.all(PRICES < 1700)


@pytest.mark.parametrize("t", TIERS, ids=lambda t: t.name)
def test_every_tier_round_trips_the_sample_near_its_nominal_size(t: TierSpec) -> None:
    enc = codecs.encode(PRICES, t.bits)
    expected_bits = 64 if t.bits == 80 and platform_top_bits() == 64 else t.bits
    assert enc.bits == expected_bits and enc.n == PRICES.size
    assert codecs.nominal_bytes(t.bits) == t.nominal_bytes
    per_value = enc.nbytes / PRICES.size
    nominal = codecs.nominal_bytes(enc.bits)
    assert nominal <= per_value <= nominal * 1.1  # block metadata: two float64 per 256 values
    assert (enc.ref is not None) == t.blockwise
    out = codecs.decode(enc)
    assert out.shape == PRICES.shape
    abs_err, rel_err = codecs.measured_error(PRICES, enc)
    assert abs_err <= enc.abs_error and rel_err <= enc.rel_error
    if t.bits >= 64:
        assert abs_err == 0.0  # float64 input is exact in 64 and 80 bits
    if t.blockwise:
        assert enc.block_error is not None
        err = np.abs(out - PRICES)
        for k, bound in enumerate(enc.block_error):
            assert err[k * codecs.BLOCK : (k + 1) * codecs.BLOCK].max() <= bound
        # the bound is meaningful: 8-bit well under 1 %, 16-bit under 0.01 %
        assert enc.rel_error < (0.01 if t.bits == 8 else 1e-4)


def test_unknown_tier_raises_naming_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown precision tier 12; expected one of 8, 16, 32, 64, 80"
    ):
        tier(12)
    with pytest.raises(ValueError, match="expected one of 8, 16, 32, 64, 80"):
        codecs.encode(PRICES, 12)


def test_lossless_tiers_are_found_by_name_only_and_every_name_encodes() -> None:
    from shared.tiers import BY_NAME, LOSSLESS_NAMES, LOSSLESS_TIERS, named

    assert LOSSLESS_NAMES == {"ticks", "lossless"} and all(t.lossless for t in LOSSLESS_TIERS)
    assert not any(t.lossless for t in TIERS)
    assert tier(64).name == "float64" and BY_BITS[64] is named("float64")  # bits keep their rung
    assert set(BY_NAME) == {t.name for t in TIERS} | LOSSLESS_NAMES
    for name, spec in BY_NAME.items():
        enc = codecs.encode(PRICES, name)
        assert enc.tier_name == (name if spec.lossless else tier(enc.bits).name)
        if spec.lossless or spec.bits == 64:
            assert np.array_equal(codecs.decode(enc), PRICES) and enc.abs_error == 0.0
    with pytest.raises(ValueError, match="unknown precision tier 'float128'; expected one of"):
        named("float128")
