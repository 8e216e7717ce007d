"""Precision codecs for numeric series: top (80-bit x87 extended or 64), 64, 32, 16 and 8 bits,
and the lossless tiers ``ticks`` and ``lossless`` (shared/lossless.py), chosen by name.

A float16 of 43 210.55 is 43 200: useless for prices. The 16- and 8-bit tiers are blockwise
scaled integers instead: each block of ``BLOCK`` values stores its midpoint ``ref`` and a step
``scale`` (two float64), and each value the integer ``round((x - ref) / scale)``. A value's
error is at most ``scale / 2`` plus float rounding; each block publishes that guaranteed bound,
and measured_error() checks it against the decoded values.

Gaps (NaN) survive as a reserved integer (the type's minimum). Infinities are rejected.
The top tier keeps the significant bytes of the platform's numpy.longdouble: 10 of x87
extended's 16 on x86-64, all 16 of IEEE quad on aarch64 Linux (where the first 10 are low
mantissa bytes: keeping them alone would destroy every value). Nothing loops per value in
Python: the block encoder and decoder are one C pass per block, and the 32-bit tier measures its error in
the conversion's own pass (_fastcodecs.c, AVX2 where the CPU has it). Each has a numpy reference
that gives the same results, used where no C compiler was found at install.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import numpy.typing as npt

from shared import lossless
from shared.longdouble import longdouble_format
from shared.precision import platform_top_bits
from shared.tiers import LOSSLESS_NAMES, Bits, named, tier

try:  # the compiled encoders, built by `pip install` where a C compiler exists (setup.py)
    from shared import _fastcodecs
except ImportError:  # pragma: no cover - exercised only on machines without a compiler
    _fastcodecs = None  # type: ignore[assignment]

#: which encoders run for the 32/16/8-bit tiers: "avx2" or "portable" (compiled), or "numpy"
#: (no compiler at install; same results, slower)
KERNEL: Final[str] = "numpy" if _fastcodecs is None else _fastcodecs.KERNEL

BLOCK: Final = 256
Tier = Bits
F64 = npt.NDArray[np.float64]

_INT: dict[int, type[np.signedinteger]] = {16: np.int16, 8: np.int8}
_F32_MAX: Final = float(np.finfo(np.float32).max)  # a Python float: comparing never casts
_INFINITY: Final = lossless.INFINITY  # one message for every tier
_NO_PAYLOAD: Final = np.empty(0, dtype=np.uint8)  # the lossless tiers keep their bytes in blocks
_LONGDOUBLE_BYTES: Final = longdouble_format().significant_bytes if platform_top_bits() == 80 else 8


@dataclass(frozen=True, eq=False)
class Encoded:
    """One encoded run of values. Immutable: readers may hold it while the writer replaces it."""

    bits: int
    n: int
    payload: np.ndarray
    ref: F64 | None = None  # per block (16/8-bit)
    scale: F64 | None = None
    block_error: F64 | None = None  # measured max |decoded - x| per block, absolute
    abs_error: float = 0.0  # measured max |decoded - x| over the run
    rel_error: float = 0.0  # max |decoded - x| / |x| (per block: block error / smallest |x|)
    tier: str = ""  # a lossless tier's name; "" for the rungs named by bits
    blocks: tuple[lossless.Block, ...] = ()  # the lossless tiers' independent blocks

    @property
    def tier_name(self) -> str:
        return self.tier or tier(self.bits).name

    @property
    def nbytes(self) -> int:
        meta = 0 if self.ref is None or self.scale is None else self.ref.nbytes + self.scale.nbytes
        return int(self.payload.nbytes) + meta + lossless.nbytes(self.blocks)


def nominal_bytes(bits: int | str) -> float:
    return named(bits).nominal_bytes if isinstance(bits, str) else tier(bits).nominal_bytes


def _check(values: npt.ArrayLike, finite: bool = True) -> F64:
    x = np.ascontiguousarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {x.shape}")
    if finite and np.isinf(x).any():
        raise ValueError(_INFINITY)
    return x


def encode(values: npt.ArrayLike, bits: int | str, block: int = lossless.BLOCK) -> Encoded:
    """values in a tier given by bits or by name; ``block``: values per lossless block."""
    if isinstance(bits, str):
        spec = named(bits)  # raises, naming the known tiers
        if not spec.lossless:
            return encode(values, spec.bits)
        kind: lossless.Kind = "ticks" if spec.name == "ticks" else "lossless"
        blocks = lossless.encode(values, kind, block)
        return Encoded(64, sum(b.n for b in blocks), _NO_PAYLOAD, tier=spec.name, blocks=blocks)
    if bits in _INT:  # the compiled encoders find infinities in the same pass
        return _encode_blocks(_check(values, finite=False), bits)
    if bits == 32:
        return _encode32(_check(values, finite=False))
    x = _check(values)
    if bits == 64:
        return Encoded(64, x.size, x.copy())
    if bits == 80:
        return _encode_top(x)
    tier(bits)  # raises, naming the known tiers
    raise ValueError(f"no encoder for precision tier {bits}")


def _encode32(x: F64, kernel: str = KERNEL) -> Encoded:
    """float32 with its exact error, measured in the conversion's own pass where compiled."""
    if kernel == "numpy" or _fastcodecs is None:
        return _encode32_numpy(x)
    f = np.empty(x.size, dtype=np.float32)
    abs_error, rel_error, largest = _fastcodecs.narrow32(x, f, kernel == "portable")
    if math.isinf(largest):
        raise ValueError(_INFINITY)
    if largest > _F32_MAX:
        return Encoded(64, x.size, x.copy())  # float32 would turn these into infinity
    return Encoded(32, x.size, f, abs_error=abs_error, rel_error=rel_error)


def _encode32_numpy(x: F64) -> Encoded:
    """The reference for _fastcodecs.narrow32; the tests check both give the same."""
    if np.isinf(x).any():
        raise ValueError(_INFINITY)
    if x.size and np.nanmax(np.abs(x), initial=0.0) > _F32_MAX:
        return Encoded(64, x.size, x.copy())  # float32 would turn these into infinity
    f = x.astype(np.float32)
    err = np.abs(f - x)
    return Encoded(
        32, x.size, f, abs_error=float(np.nanmax(err, initial=0.0)), rel_error=_rel(err, x)
    )


def _rel(err: F64, x: F64) -> float:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # ratios may be inf
        r = err / np.abs(x)
    r = r[np.isfinite(r) | (err > 0)]
    return float(np.nanmax(r)) if r.size else 0.0


def _encode_top(x: F64) -> Encoded:
    ld = x.astype(np.longdouble)
    if _LONGDOUBLE_BYTES == 8:
        return Encoded(64, x.size, x.copy())  # no extended type on this platform: float64
    raw = ld.view(np.uint8).reshape(-1, ld.itemsize)[:, :_LONGDOUBLE_BYTES]
    return Encoded(80, x.size, np.ascontiguousarray(raw))


def _encode_blocks(x: F64, bits: int, kernel: str = KERNEL) -> Encoded:
    """kernel: "numpy", "portable" or the best compiled one; tests and the benchmark compare them."""
    if kernel == "numpy" or _fastcodecs is None:
        return _encode_blocks_numpy(x, bits)
    n = x.size
    nb = max(1, -(-n // BLOCK))
    q = np.empty(n, dtype=_INT[bits])
    lo, hi, ref, scale = (np.zeros(nb) for _ in range(4))
    if not _fastcodecs.encode(x, q, lo, hi, ref, scale, BLOCK, _levels(bits), kernel == "portable"):
        raise ValueError(_INFINITY)
    return _with_bounds(bits, n, q, lo, hi, ref, scale)


def _levels(bits: int) -> float:
    # headroom of two steps each side: float rounding of ref may shift an offset by a little
    return float(2 * np.iinfo(_INT[bits]).max - 4)


def _encode_blocks_numpy(x: F64, bits: int) -> Encoded:
    """The reference block encoder, in float64 throughout (any finite magnitude).

    Guaranteed bound per block, from the arithmetic: rounding to the integer grid costs at most
    half a step, and float64 rounding in (x - ref) / scale and in ref + q * scale adds a few
    ulps of the block's magnitude: |decoded - x| <= 0.5 * scale * (1 + 2**-40) + max|x| * 2**-47.
    measured_error() confirms it on every series in the tests and the benchmark.
    _fastcodecs.c does the same operations in the same order in one pass per block; the tests
    check that both give identical integers and metadata.
    """
    n = x.size
    itype = _INT[bits]
    info = np.iinfo(itype)
    nb = max(1, -(-n // BLOCK))
    if n % BLOCK or n == 0:  # pad the last (or only, empty) block
        padded = np.empty(nb * BLOCK, dtype=np.float64)
        padded[:n] = x
        padded[n:] = x[-1] if n else 0.0
    else:
        padded = x
    blocks = padded.reshape(nb, BLOCK)
    nan = np.isnan(blocks) if np.isnan(x).any() else None
    lo = (np.fmin if nan is not None else np.minimum).reduce(blocks, axis=1)
    hi = (np.fmax if nan is not None else np.maximum).reduce(blocks, axis=1)
    if nan is not None:
        empty = np.isnan(lo)  # an all-gap block
        lo[empty] = 0.0
        hi[empty] = 0.0
    if np.isinf(lo).any() or np.isinf(hi).any():
        raise ValueError(_INFINITY)
    constant = hi == lo
    # Halving each end avoids overflow at extreme magnitudes (hi - lo of +-1e308 is infinite);
    # a constant block keeps its value itself as the reference (halving a subnormal rounds it away).
    ref = np.where(constant, lo, lo * 0.5 + hi * 0.5)
    half = hi * 0.5 - lo * 0.5
    # The step is never finer than 4 ulps of the block's magnitude (a finer grid than float64
    # can resolve lets the rounding of ref push offsets past the integer range) nor below the
    # smallest normal float64 (1/scale would overflow). Half a step still bounds the error.
    mag = np.maximum(np.abs(lo), np.abs(hi))
    floor = np.maximum(mag * 2.0**-50, np.finfo(np.float64).tiny)
    scale = np.where(constant, 1.0, np.maximum(half / (_levels(bits) * 0.5), floor))
    t = blocks - ref[:, None]
    t *= (1.0 / scale)[:, None]
    np.clip(t, -info.max, info.max, out=t)  # never wrap around: a clipped value is < 1 step off
    q = np.empty((nb, BLOCK), dtype=itype)
    with np.errstate(invalid="ignore"):  # NaN gaps cast to garbage, then get the gap code
        np.rint(t, out=q, casting="unsafe")
    if nan is not None:
        q[nan] = info.min  # reserved for NaN
    payload = q.reshape(-1)[:n].copy() if n % BLOCK or n == 0 else q.reshape(-1)
    return _with_bounds(bits, n, payload, lo, hi, ref, scale)


def _with_bounds(
    bits: int, n: int, q: np.ndarray, lo: F64, hi: F64, ref: F64, scale: F64
) -> Encoded:
    """Each block's guaranteed error bound (see _encode_blocks_numpy), absolute and relative."""
    mag = np.maximum(np.abs(lo), np.abs(hi))
    bound = np.where(hi > lo, 0.5 * scale * (1 + 2.0**-40), 0.0) + mag * 2.0**-47
    low = np.minimum(np.abs(lo), np.abs(hi))
    crosses = (lo <= 0) & (hi >= 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # ratios may be inf
        rel = np.where(bound == 0, 0.0, bound / np.where(crosses, 0.0, low))
    return Encoded(
        bits,
        n,
        q,
        ref,
        scale,
        bound,
        abs_error=float(bound.max()),
        rel_error=float(rel.max()),
    )


def measured_error(values: npt.ArrayLike, enc: Encoded) -> tuple[float, float]:
    """(max absolute, max relative) error of enc against the original values, gaps ignored."""
    x = _check(values)
    d = decode(enc)
    err = np.abs(d - x)
    err = np.where(np.isnan(x), 0.0, err)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # ratios may be inf
        rel = np.where(err == 0, 0.0, err / np.abs(x))
    return float(err.max(initial=0.0)), float(rel.max(initial=0.0))


def decode(enc: Encoded) -> F64:
    """Back to float64 (the top tier returns numpy.longdouble's value rounded to float64)."""
    if enc.tier in LOSSLESS_NAMES:
        return lossless.decode(enc.blocks)
    if enc.bits == 64:
        return np.asarray(enc.payload, dtype=np.float64).copy()
    if enc.bits == 32:
        return enc.payload.astype(np.float64)
    if enc.bits == 80:
        full = np.zeros((enc.n, np.dtype(np.longdouble).itemsize), dtype=np.uint8)
        full[:, :_LONGDOUBLE_BYTES] = enc.payload
        return full.view(np.longdouble).reshape(-1).astype(np.float64)
    return _decode_blocks(enc)


def decode_extended(enc: Encoded) -> npt.NDArray[np.longdouble]:
    """The top tier at its full precision."""
    if enc.bits != 80:
        return decode(enc).astype(np.longdouble)
    full = np.zeros((enc.n, np.dtype(np.longdouble).itemsize), dtype=np.uint8)
    full[:, :_LONGDOUBLE_BYTES] = enc.payload
    return full.view(np.longdouble).reshape(-1)


def _decode_blocks(enc: Encoded, kernel: str = KERNEL) -> F64:
    if kernel == "numpy" or _fastcodecs is None:
        return _decode_blocks_numpy(enc)
    assert enc.ref is not None and enc.scale is not None
    out = np.empty(enc.n, dtype=np.float64)
    _fastcodecs.decode(np.ascontiguousarray(enc.payload), enc.ref, enc.scale, out, BLOCK)
    return out


def _decode_blocks_numpy(enc: Encoded) -> F64:
    """The reference for _fastcodecs.decode; the tests check both give the same floats."""
    assert enc.ref is not None and enc.scale is not None
    n, nb = enc.n, enc.ref.size
    info = np.iinfo(enc.payload.dtype)
    q = np.empty(nb * BLOCK, dtype=enc.payload.dtype)
    q[:n] = enc.payload
    q[n:] = 0
    qb = q.reshape(nb, BLOCK)
    out = qb.astype(np.float64)
    out[qb == info.min] = np.nan
    with np.errstate(over="ignore"):  # only next to +-float64 max; saturated below
        out *= enc.scale[:, None]
        out += enc.ref[:, None]
        edge = np.abs(enc.ref) + info.max * enc.scale
    near_max = edge > np.finfo(np.float64).max
    if near_max.any():  # half a step past float64 max is still within the bound of float64 max
        big = np.finfo(np.float64).max
        out[near_max] = np.clip(out[near_max], -big, big)
    return out.reshape(-1)[:n]


def reencode(enc: Encoded, bits: int | str) -> Encoded:
    """Change tier. From a lossy tier the errors add up (triangle inequality), and say so."""
    if (named(bits).name if isinstance(bits, str) else tier(bits).name) == enc.tier_name:
        return enc
    again = encode(decode(enc), bits)
    return replace(
        again,
        block_error=None if again.block_error is None else again.block_error + enc.abs_error,
        abs_error=again.abs_error + enc.abs_error,
        rel_error=again.rel_error + enc.rel_error,
    )
