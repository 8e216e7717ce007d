"""The top tier round-trips exactly on every platform (x86-64 here, aarch64 under make test-arm).

It is the first check of the Raspberry Pi build: keeping the wrong bytes of a 16-byte IEEE quad
turns 43 210.55 into a subnormal, so this must hold before anything else is worth running.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shared.codecs import decode, decode_extended, encode
from shared.longdouble import longdouble_format
from shared.precision import platform_top_bits
from shared.tiers import tier

FLOAT64_EDGES = np.array([
    0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308,
    1.7976931348623157e308, -1.7976931348623157e308, 1.0, -1.5, 43_210.55, 1 / 3, np.nan,
])  # fmt: skip


def test_top_tier_round_trips_float64_edges_bit_for_bit() -> None:
    enc = encode(FLOAT64_EDGES, 80)
    back = decode(enc)
    assert np.array_equal(back.view(np.uint64)[:-1], FLOAT64_EDGES.view(np.uint64)[:-1])
    assert np.isnan(back[-1])


def test_top_tier_books_the_bytes_it_keeps() -> None:
    x = np.linspace(-1e6, 1e6, 1000)
    enc = encode(x, 80)
    assert enc.bits == platform_top_bits()
    expected = longdouble_format().significant_bytes if enc.bits == 80 else 8
    assert enc.nbytes == expected * x.size


@given(hnp.arrays(np.float64, st.integers(0, 600),
                  elements=st.floats(allow_nan=False, allow_infinity=False, width=64)))  # fmt: skip
def test_top_tier_round_trips_the_whole_float64_range(x: np.ndarray) -> None:
    enc = encode(x, 80)
    assert np.array_equal(decode(enc).view(np.uint64), x.view(np.uint64))
    assert np.array_equal(decode_extended(enc), x.astype(np.longdouble))


@pytest.mark.parametrize(("nmant", "itemsize", "expected"), [
    (52, 8, ("float64", "extended80", 8, False)),               # macOS ARM64, Windows
    (63, 16, ("x87 extended (80-bit)", "extended80", 10, False)),  # x86-64 Linux
    (63, 12, ("x87 extended (80-bit)", "extended80", 10, False)),  # i386
    (112, 16, ("IEEE quad (128-bit)", "quad128", 16, True)),    # aarch64 Linux: a Raspberry Pi
    (105, 16, ("longdouble (105-bit mantissa)", "longdouble", 16, True)),  # POWER double-double
])  # fmt: skip
def test_longdouble_formats_of_each_platform(
    nmant: int, itemsize: int, expected: tuple[str, str, int, bool]
) -> None:
    assert tuple(longdouble_format(nmant, itemsize)) == expected


def test_the_registry_books_the_top_tier_as_the_platform_holds_it() -> None:
    top, fmt = tier(80), longdouble_format()
    assert top.name == fmt.tier_name and fmt.name in top.description
    if platform_top_bits() == 80:
        assert top.nominal_bytes == fmt.significant_bytes
        assert encode(np.ones(512), 80).nbytes == top.nominal_bytes * 512


def test_this_platforms_format_matches_numpy() -> None:
    fmt = longdouble_format()
    info = np.finfo(np.longdouble)
    assert fmt.significant_bytes <= np.dtype(np.longdouble).itemsize
    assert (fmt.name == "float64") == (info.nmant == 52)
