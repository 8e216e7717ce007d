"""Lossless tiers: ``ticks`` (integers on a per-block decimal tick) and ``lossless`` (any float64).

Prices are quoted on a grid (cents; 1e-5 for EURUSD). ``ticks`` finds, per block, the coarsest
decimal tick 10^-k (k <= 9) on which the block's values lie, in the way ALP (SIGMOD 2024) does:
a value x is on the grid when n = rint(x * 10^k) gives back n / 10^k == x bit for bit. It stores
the integers n with pcodec (which codes their first differences), and the values off the grid
(NaN gaps, -0.0, a stray quote) as an exception list: position and raw float64. A block with too
many exceptions to gain is stored as ``lossless`` instead. ``lossless`` is pcodec's float64 codec,
which maps each value to an integer by its bit pattern: NaN payloads, -0.0 and subnormals come
back bit for bit (the tests check it on random bit patterns).

Blocks are independent, so a read decodes only the blocks it touches. Both tiers publish an error
of exactly 0. Infinities are refused, as by every tier in shared/codecs.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from pcodec import ChunkConfig, DeltaSpec, standalone

F64 = npt.NDArray[np.float64]
Kind = Literal["ticks", "lossless"]

#: values per independent block (a read decodes whole blocks; pcodec gains little past this)
BLOCK: Final = 4096
MAX_DIGITS: Final = 9  # ticks down to 1e-9
#: pcodec's compression level: 4 keeps encode several times faster than its default 8 for about
#: 2 % more bytes on tick-grid prices
LEVEL: Final = 4
#: a block goes to the float codec when more than this share of its values are off its grid
MAX_EXCEPTION_SHARE: Final = 0.125
INFINITY: Final = "series contains infinity: not a price or feature value"

_POW10: Final = tuple(float(10**k) for k in range(MAX_DIGITS + 1))
_POW10_COL: Final = np.array(_POW10)[:, None]  # every candidate tick at once, one row each
_DIGITS: Final = np.arange(MAX_DIGITS + 1)
_EXACT: Final = float(2**53)  # integers below this are exact in float64
_HEADER: Final = 4  # bytes per block: kind, digits, exception count (uint16)
_SAMPLE: Final = 64  # values tried per candidate tick before the full check
_INT_CONFIG: Final = ChunkConfig(compression_level=LEVEL, delta_spec=DeltaSpec.try_consecutive(1))
_FLOAT_CONFIG: Final = ChunkConfig(compression_level=LEVEL)


@dataclass(frozen=True, eq=False)
class Block:
    """One independently decodable block. ``digits`` is k of the tick 10^-k; -1: float codec."""

    n: int
    digits: int
    body: bytes  # pcodec standalone bytes (empty for an empty block)
    exc_pos: npt.NDArray[np.uint16] | None = None  # positions in the block, off the grid
    exc_bits: npt.NDArray[np.uint64] | None = None  # their raw float64 bit patterns

    @property
    def nbytes(self) -> int:
        exc = 0 if self.exc_pos is None or self.exc_bits is None else (
            self.exc_pos.nbytes + self.exc_bits.nbytes)  # fmt: skip
        return _HEADER + len(self.body) + exc


def _check(values: npt.ArrayLike) -> F64:
    x = np.ascontiguousarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError(INFINITY)
    return x


def encode(values: npt.ArrayLike, kind: Kind, block: int = BLOCK) -> tuple[Block, ...]:
    """The blocks of values, each exactly decodable; ``kind`` "ticks" tries a grid per block."""
    if not 0 < block <= 1 << 16:
        raise ValueError(f"block size {block} outside 1..65536")
    x = _check(values)
    enc = _ticks_block if kind == "ticks" else _float_block
    return tuple(enc(x[i : i + block]) for i in range(0, x.size, block))


def nbytes(blocks: tuple[Block, ...]) -> int:
    return sum(b.nbytes for b in blocks)


def _float_block(x: F64) -> Block:
    if x.size == 0:
        return Block(0, -1, b"")
    return Block(x.size, -1, standalone.simple_compress(np.ascontiguousarray(x), _FLOAT_CONFIG))


def _on_grid(x: F64, p: float | F64) -> tuple[F64, npt.NDArray[np.bool_]]:
    """(rint(x * p), which values that gives back bit for bit) for a tick 1/p (p = 10^k)."""
    with np.errstate(invalid="ignore", over="ignore"):
        n = np.rint(x * p)
        ok = (n / p).view(np.uint64) == x.view(np.uint64)
        ok &= np.abs(n) < _EXACT  # NaN compares False: a gap is an exception
        ok &= (n != 0) | ~np.signbit(x)  # -0.0 would come back from the integer 0 as +0.0
    return n, ok


def find_digits(x: F64) -> int:
    """The k whose grid 10^-k costs least on a sample of the block (ALP's estimate).

    Each finer digit costs about log2(10) bits on every value; each value off the grid costs an
    exception of 80 bits (position and raw float64). All ten grids are tried in one pass.
    """
    sample = x[:: max(1, x.size // _SAMPLE)]
    ok = _on_grid(sample[None, :], _POW10_COL)[1]
    misses = sample.size - np.count_nonzero(ok, axis=1)
    cost = misses * 80 + _DIGITS * 3.33 * sample.size
    return int(np.argmin(cost))  # the first (coarsest) of equal costs


def _ticks_block(x: F64) -> Block:
    if x.size == 0:
        return Block(0, -1, b"")
    k = find_digits(x)
    n, ok = _on_grid(x, _POW10[k])
    off = np.flatnonzero(~ok)
    if off.size > MAX_EXCEPTION_SHARE * x.size:
        return _float_block(x)
    if off.size:
        # an exception repeats the previous integer (or the next one at the block start), so it
        # adds no difference for pcodec to code
        good = np.flatnonzero(ok)
        if good.size == 0:
            return _float_block(x)
        prev = np.maximum.accumulate(np.where(ok, np.arange(x.size), -1))
        n[off] = np.where(prev[off] >= 0, n[np.maximum(prev[off], 0)], n[good[0]])
    ints = n.astype(np.int64)
    exc_bits = x[off].view(np.uint64).copy() if off.size else None
    return Block(
        x.size,
        k,
        standalone.simple_compress(ints, _INT_CONFIG),
        off.astype(np.uint16) if off.size else None,
        exc_bits,
    )


def decode_block(b: Block, out: F64 | None = None) -> F64:
    """One block back to float64, bit for bit; written into ``out`` when given."""
    dst = np.empty(b.n, dtype=np.float64) if out is None else out
    if b.n == 0:
        return dst
    raw = standalone.simple_decompress(b.body)
    if b.digits < 0:
        dst[:] = raw
        return dst
    np.divide(raw, _POW10[b.digits], out=dst, casting="unsafe")  # int64 -> float64 is exact here
    if b.exc_pos is not None and b.exc_bits is not None:
        dst[b.exc_pos] = b.exc_bits.view(np.float64)
    return dst


def decode(blocks: tuple[Block, ...], start: int = 0, stop: int | None = None) -> F64:
    """Values [start, stop) of the run, decoding only the blocks that hold them."""
    sizes = np.fromiter((b.n for b in blocks), dtype=np.int64, count=len(blocks))
    ends = np.cumsum(sizes)
    total = int(ends[-1]) if ends.size else 0
    stop = total if stop is None else min(stop, total)
    start = max(0, start)
    if stop <= start:
        return np.empty(0, dtype=np.float64)
    if start == 0 and stop == total:
        out = np.empty(total, dtype=np.float64)
        at = 0
        for b in blocks:
            decode_block(b, out[at : at + b.n])
            at += b.n
        return out
    first = int(np.searchsorted(ends, start, side="right"))
    last = int(np.searchsorted(ends, stop - 1, side="right"))
    base = int(ends[first] - sizes[first])
    part = np.concatenate([decode_block(blocks[i]) for i in range(first, last + 1)])
    return part[start - base : stop - base]
