"""The one precision-tier registry: codecs, decisions, messages, metrics and reports read it.

A new tier is a row here, its encoder in ``shared/codecs.py`` (and the C kernel if it is a block
tier); everything else (names, byte costs, metric labels, report bands) follows from the row.

Tiers are identified by name. ``bits`` (the seed's vocabulary, ``precision_bits`` in messages)
keys the float and lossy rungs in ``TIERS``; the lossless rungs in ``LOSSLESS_TIERS`` hold float64
exactly, so their ``bits`` is 64, and they are found by name only (``named``), never by bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.longdouble import longdouble_format

Bits = Literal[8, 16, 32, 64, 80]


@dataclass(frozen=True)
class TierSpec:
    bits: Bits
    name: str  # the decision's precision_tier
    nominal_bytes: float  # per value, before block metadata
    blockwise: bool  # scaled integers per block of values, with a published error bound
    description: str
    lossless: bool = False  # compressed, decoded bit for bit: error exactly 0 on any float64


_TOP = longdouble_format()  # the top row is booked as what this platform's longdouble holds

TIERS: tuple[TierSpec, ...] = (
    TierSpec(8, "block8", 1.0, True, "8-bit blockwise quantised, bounded error per block"),
    TierSpec(16, "block16", 2.0, True, "16-bit offsets from a block reference"),
    TierSpec(32, "float32", 4.0, False, "IEEE single precision"),
    TierSpec(64, "float64", 8.0, False, "IEEE double precision (exact for float64 input)"),
    TierSpec(80, _TOP.tier_name, float(max(10, _TOP.significant_bytes)), False,
             f"{_TOP.name}: this platform's numpy.longdouble; the seed's '81-bit'"),
)  # fmt: skip

#: compressed without loss (shared/lossless.py); nominal_bytes is the worst case (float64 plus a
#: block header), what they really take depends on the data (``python -m bench codecs``)
LOSSLESS_TIERS: tuple[TierSpec, ...] = (
    TierSpec(64, "ticks", 8.0, False,
             "integers on a decimal tick found per block, pcodec-coded; exceptions kept raw", True),
    TierSpec(64, "lossless", 8.0, False, "pcodec float64, bit for bit (NaN, -0.0, subnormals)",
             True),
)  # fmt: skip

BY_BITS: dict[int, TierSpec] = {t.bits: t for t in TIERS}
ALL_BITS: tuple[Bits, ...] = tuple(t.bits for t in TIERS)


def tier(bits: int) -> TierSpec:
    try:
        return BY_BITS[bits]
    except KeyError:
        known = ", ".join(str(b) for b in ALL_BITS)
        raise ValueError(f"unknown precision tier {bits}; expected one of {known}") from None


BY_NAME: dict[str, TierSpec] = {t.name: t for t in (*TIERS, *LOSSLESS_TIERS)}
LOSSLESS_NAMES: frozenset[str] = frozenset(t.name for t in LOSSLESS_TIERS)


def named(name: str) -> TierSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(BY_NAME)
        raise ValueError(f"unknown precision tier {name!r}; expected one of {known}") from None
