"""The one precision-tier registry: codecs, decisions, messages, metrics and reports read it.

A new tier is a row here, its encoder in ``shared/codecs.py`` (and the C kernel if it is a block
tier); everything else (names, byte costs, metric labels, report bands) follows from the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Bits = Literal[8, 16, 32, 64, 80]


@dataclass(frozen=True)
class TierSpec:
    bits: Bits
    name: str  # the decision's precision_tier
    nominal_bytes: float  # per value, before block metadata
    blockwise: bool  # scaled integers per block of values, with a published error bound
    description: str


TIERS: tuple[TierSpec, ...] = (
    TierSpec(8, "block8", 1.0, True, "8-bit blockwise quantised, bounded error per block"),
    TierSpec(16, "block16", 2.0, True, "16-bit offsets from a block reference"),
    TierSpec(32, "float32", 4.0, False, "IEEE single precision"),
    TierSpec(64, "float64", 8.0, False, "IEEE double precision (exact for float64 input)"),
    TierSpec(80, "extended80", 10.0, False,
             "x87 80-bit extended (numpy.longdouble on x86-64); the seed's '81-bit'"),
)  # fmt: skip

BY_BITS: dict[int, TierSpec] = {t.bits: t for t in TIERS}
ALL_BITS: tuple[Bits, ...] = tuple(t.bits for t in TIERS)


def tier(bits: int) -> TierSpec:
    try:
        return BY_BITS[bits]
    except KeyError:
        known = ", ".join(str(b) for b in ALL_BITS)
        raise ValueError(f"unknown precision tier {bits}; expected one of {known}") from None
