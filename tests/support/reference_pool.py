"""Reference: the pool before running totals (O(blocks) a decision), which the indexed pool must match.

The precision-tiered memory pool: named buffers of encoded blocks under a hard byte budget.

Each block is tagged with the value of its time (the profit potential when it was written) and
is high-value above a threshold (0.8). High-value blocks are written at the top tier and never
downgraded. A decision sets the tier for everything else: blocks above it are re-encoded down
(re-encoding up cannot bring back precision already dropped, so lower blocks stay). Over budget,
the lowest-value, oldest blocks are downgraded one tier at a time to 8 bits; if that is not
enough, the oldest low-value blocks are evicted (counted). Only a budget that high-value data
alone exceeds evicts the oldest high-value block, counted separately and logged.

One writer, many readers: the writer holds a lock; buffers are immutable tuples of immutable
blocks replaced whole, so a reader takes a reference and decodes without any lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shared.codecs import Encoded, decode, encode, reencode
from shared.precision import ladder, platform_top_bits

log = logging.getLogger("qas.pool.reference")


@dataclass(frozen=True)
class Block:
    seq: int
    written_at: float
    value: float
    high_value: bool
    enc: Encoded


@dataclass(frozen=True)
class Snapshot:
    values: npt.NDArray[np.float64]
    abs_error: float  # the largest bound over the blocks read
    rel_error: float
    tiers: tuple[int, ...]


@dataclass
class PoolReport:
    bytes_before: int
    bytes_after: int
    error_bound: float  # largest relative bound of any stored value
    downgraded: int = 0
    evicted: int = 0
    evicted_high_value: int = 0
    rejected: int = 0


@dataclass
class TieredPool:
    budget_bytes: int
    high_value_threshold: float = 0.8
    tier: int = 16
    top_bits: int = field(default_factory=platform_top_bits)
    reserve_share: float = 0.10  # predictive cache: top-tier capacity held while profit rises
    evicted: int = 0
    evicted_high_value: int = 0
    downgraded: int = 0
    rejected_writes: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._buffers: dict[str, tuple[Block, ...]] = {}
        self._seq = 0
        self._reserve: np.ndarray | None = None

    # --- reading (no lock) ----------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._buffers)

    def read(self, name: str) -> Snapshot:
        blocks = self._buffers.get(name, ())
        if not blocks:
            return Snapshot(np.empty(0), 0.0, 0.0, ())
        values = np.concatenate([decode(b.enc) for b in blocks])
        return Snapshot(
            values,
            max(b.enc.abs_error for b in blocks),
            max(b.enc.rel_error for b in blocks),
            tuple(b.enc.bits for b in blocks),
        )

    def blocks(self, name: str) -> tuple[Block, ...]:
        return self._buffers.get(name, ())

    @property
    def reserved_bytes(self) -> int:
        reserve = self._reserve
        return 0 if reserve is None else int(reserve.nbytes)

    def nbytes(self) -> int:
        return (
            sum(b.enc.nbytes for bs in list(self._buffers.values()) for b in bs)
            + self.reserved_bytes
        )

    def bytes_by_tier(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for bs in list(self._buffers.values()):
            for b in bs:
                out[b.enc.bits] = out.get(b.enc.bits, 0) + b.enc.nbytes
        return out

    def error_bound(self) -> float:
        return max(
            (b.enc.rel_error for bs in list(self._buffers.values()) for b in bs), default=0.0
        )

    # --- writing (one writer at a time) ---------------------------------------------------

    def write(self, name: str, values: npt.ArrayLike, *, value: float, now: float) -> bool:
        """Append a block. False (and counted) when it cannot fit even after making room."""
        high = value >= self.high_value_threshold
        enc = encode(values, self.top_bits if high else self.tier)
        with self._lock:
            self._seq += 1
            block = Block(self._seq, now, float(value), high, enc)
            self._buffers[name] = (*self._buffers.get(name, ()), block)
            report = PoolReport(0, 0, 0.0)
            self._enforce(report, protect=block)
            if report.rejected:
                self._buffers[name] = tuple(b for b in self._buffers[name] if b.seq != block.seq)
                if not self._buffers[name]:
                    del self._buffers[name]
                self.rejected_writes += 1
                return False
            return True

    def apply(
        self, bits: int, budget_bytes: int | None = None, *, reserve: bool | None = None
    ) -> PoolReport:
        """Enact a decision: the tier for ordinary data, the budget, the predictive reserve."""
        with self._lock:
            before = self.nbytes()
            self.tier = bits
            if budget_bytes is not None:
                self.budget_bytes = budget_bytes
            if reserve is not None:
                self._set_reserve(reserve)
            report = PoolReport(before, before, 0.0)
            rank: dict[int, int] = {b: i for i, b in enumerate(ladder(self.top_bits))}
            for name, blocks in list(self._buffers.items()):
                new = tuple(
                    b if b.high_value or rank.get(b.enc.bits, 0) <= rank.get(bits, 0)
                    else self._downgrade(b, bits, report)
                    for b in blocks
                )  # fmt: skip
                self._buffers[name] = new
            self._enforce(report)
            report.bytes_after = self.nbytes()
            report.error_bound = self.error_bound()
            return report

    def _set_reserve(self, on: bool) -> None:
        if on and self._reserve is None:
            values = int(self.budget_bytes * self.reserve_share) // np.dtype(np.longdouble).itemsize
            self._reserve = np.empty(values, dtype=np.longdouble)  # pre-allocated, top tier
        elif not on:
            self._reserve = None

    def _downgrade(self, b: Block, bits: int, report: PoolReport) -> Block:
        report.downgraded += 1
        self.downgraded += 1
        return Block(b.seq, b.written_at, b.value, b.high_value, reencode(b.enc, bits))

    def _all(self) -> Iterable[tuple[str, Block]]:
        return ((name, b) for name, bs in self._buffers.items() for b in bs)

    def _replace(self, name: str, old: Block, new: Block | None) -> None:
        self._buffers[name] = tuple(
            x for x in (new if b is old else b for b in self._buffers[name]) if x is not None
        )
        if not self._buffers[name]:
            del self._buffers[name]

    def _enforce(self, report: PoolReport, protect: Block | None = None) -> None:
        # The new block is protected (and removed when refused) by its seq, not its identity:
        # once downgraded it is a new
        # Block object, and the old scan then evicted the block it was writing while reporting
        # the write as a success (found by the differential test; the indexed pool refuses).
        steps = ladder(self.top_bits)
        while self.nbytes() > self.budget_bytes:
            lowerable = [(b.value, b.seq, name, b) for name, b in self._all()
                         if not b.high_value and b.enc.bits > 8]  # fmt: skip
            if lowerable:
                _, _, name, b = min(lowerable, key=lambda t: (t[0], t[1]))
                lower = steps[max(0, steps.index(b.enc.bits) - 1)] if b.enc.bits in steps else 8
                self._replace(name, b, self._downgrade(b, lower, report))
                continue
            if self._reserve is not None:
                self._reserve = None  # the reserve is a bet; real data comes first
                continue
            low = [
                (b.seq, name, b) for name, b in self._all() if not b.high_value and (protect is None or b.seq != protect.seq)
            ]
            if low:
                _, name, b = min(low, key=lambda t: t[0])
                self._replace(name, b, None)
                report.evicted += 1
                self.evicted += 1
                continue
            if protect is not None:  # a new block that cannot fit: refuse it, keep what is stored
                report.rejected += 1
                return
            high = [(b.seq, name, b) for name, b in self._all()]
            if not high:
                return
            _, name, b = min(high, key=lambda t: t[0])
            log.warning(
                "budget below the high-value data alone: evicting high-value block %d", b.seq
            )
            self._replace(name, b, None)
            report.evicted_high_value += 1
            self.evicted_high_value += 1
