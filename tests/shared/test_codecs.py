"""Precision codecs: error bounds hold on random and real series; memory per value is nominal."""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shared.codecs import (
    BLOCK,
    KERNEL,
    _decode_blocks,
    _encode32,
    _encode_blocks,
    decode,
    decode_extended,
    encode,
    measured_error,
    nominal_bytes,
    reencode,
)
from shared.longdouble import longdouble_format
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
        assert enc.nbytes == longdouble_format().significant_bytes * x.size
        assert decode_extended(enc).dtype == np.longdouble


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)  # up to +-1.8e308
# what stresses a block encoder: float64's edges, subnormals, constant runs, huge spans
edges = st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                         -1.7976931348623157e308, 8.98846567431158e307, 43_210.55, 1.0])  # fmt: skip


@given(
    x=hnp.arrays(np.float64, st.integers(0, 3 * BLOCK), elements=finite | edges | st.just(np.nan)),
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


COMPILED = [k for k in ("portable", KERNEL) if KERNEL != "numpy"]


def test_the_compiled_encoder_is_built() -> None:
    """Without a C compiler the install falls back to numpy (same results, slower). With one, a
    missing module means the C file failed to build, and pip only warned about it."""
    if KERNEL != "numpy":
        assert KERNEL in ("avx2", "portable")
        return
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) here: shared.codecs runs its numpy encoders")
    pytest.fail(
        f"{compiler} exists but shared/_fastcodecs.c was not built: "
        "`.venv/bin/pip install -v -e .` shows the compiler's error"
    )


@pytest.mark.parametrize("kernel", sorted(set(COMPILED)))
@given(
    x=hnp.arrays(
        np.float64, st.integers(0, 3 * BLOCK + 7), elements=finite | edges | st.just(np.nan)
    ),
    bits=st.sampled_from([8, 16]),
)
def test_compiled_encoder_matches_the_numpy_reference(
    kernel: str, x: np.ndarray, bits: int
) -> None:  # type: ignore[type-arg]
    ours, ref = _encode_blocks(x, bits, kernel), _encode_blocks(x, bits, "numpy")
    assert ours.payload.dtype == ref.payload.dtype
    assert np.array_equal(ours.payload, ref.payload)  # the same integers, bit for bit
    for a, b in ((ours.ref, ref.ref), (ours.scale, ref.scale), (ours.block_error, ref.block_error)):
        assert a is not None and b is not None and np.array_equal(a, b)
    assert (ours.abs_error, ours.rel_error) == (ref.abs_error, ref.rel_error)
    back = _decode_blocks(ours, kernel)
    assert np.array_equal(back, _decode_blocks(ours, "numpy"), equal_nan=True)


@pytest.mark.parametrize("kernel", sorted(set(COMPILED)))
@given(x=hnp.arrays(np.float64, st.integers(0, 99), elements=finite | edges | st.just(np.nan)))
def test_compiled_float32_matches_the_numpy_reference(kernel: str, x: np.ndarray) -> None:  # type: ignore[type-arg]
    ours, ref = _encode32(x, kernel), _encode32(x, "numpy")
    assert ours.bits == ref.bits and ours.payload.dtype == ref.payload.dtype
    assert np.array_equal(ours.payload, ref.payload, equal_nan=True)
    assert (ours.abs_error, ours.rel_error) == (ref.abs_error, ref.rel_error)


def _encoders(kernel: str, bits: int):  # type: ignore[no-untyped-def]
    return (
        (lambda x: _encode32(x, kernel))
        if bits == 32
        else (lambda x: _encode_blocks(x, bits, kernel))
    )


@pytest.mark.parametrize("kernel", ["numpy", *sorted(set(COMPILED))])
@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("where", [0, BLOCK - 1, BLOCK + 3])
def test_every_compiled_tier_rejects_infinity(kernel: str, bits: int, where: int) -> None:
    x = np.full(BLOCK + 10, 1.5)
    x[1] = np.nan
    x[where] = -np.inf if where % 2 else np.inf
    with pytest.raises(ValueError, match="infinity"):
        _encoders(kernel, bits)(x)


@pytest.mark.parametrize("bits", [8, 16])
def test_spans_wider_than_float64_max_decode_within_the_bound(bits: int) -> None:
    big = np.finfo(np.float64).max
    x = np.array([-big, big, 3.0, np.nan, -1.7e308, 1.7e308])  # hi - lo overflows float64
    enc = encode(x, bits)
    d = decode(enc)
    assert np.isfinite(d[~np.isnan(x)]).all() and np.isnan(d[3])
    assert measured_error(x, enc)[0] <= enc.abs_error
