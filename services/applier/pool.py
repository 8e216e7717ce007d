"""The precision-tiered memory pool: named buffers of encoded blocks under a hard byte budget.

Each block is tagged with the value of its time (the profit potential when it was written) and
is high-value above a threshold (0.8). High-value blocks are written at the top tier and never
downgraded. A decision sets the tier for everything else: blocks above it are re-encoded down
(re-encoding up cannot bring back precision already dropped, so lower blocks stay). Over budget,
the lowest-value, oldest blocks are downgraded one tier at a time to 8 bits; if that is not
enough, the oldest low-value blocks are evicted (counted). Only a budget that high-value data
alone exceeds evicts the oldest high-value block, counted separately and logged.

One writer, many readers: the writer holds a lock; blocks are immutable, and a reader copies a
buffer's block references under the lock and decodes them without it.

Cost does not grow with what is held: running totals give the bytes per tier at once, heaps
order the blocks to downgrade (lowest value, oldest) and the error bound, ordered maps the
blocks to evict (oldest) and the blocks held at each tier. A decision that changes neither tier
nor budget costs O(1); one that does costs O(log n) per block it touches.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shared.codecs import Encoded, decode, encode, reencode
from shared.precision import ladder, platform_top_bits

log = logging.getLogger("qas.pool")


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
        self._buffers: dict[str, dict[int, Block]] = {}  # name -> seq -> block, oldest first
        self._where: dict[int, str] = {}  # seq -> buffer name
        self._seq = 0
        self._reserve: np.ndarray | None = None
        self._bytes = 0
        self._by_tier_bytes: dict[int, int] = {}
        # Ordinary (not high-value) blocks per tier, oldest first: a lower tier touches only
        # the tiers above it; the oldest of all is the first eviction candidate.
        self._ordinary: dict[int, OrderedDict[int, None]] = {}
        self._high: OrderedDict[int, None] = OrderedDict()
        # Lazy heaps: an entry is stale once its block is gone or re-encoded (bits differ).
        self._lowerable: list[tuple[float, int, int]] = []  # (value, seq, bits)
        self._errors: list[tuple[float, int, int]] = []  # (-rel_error, seq, bits)

    # --- reading ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._buffers)

    def blocks(self, name: str) -> tuple[Block, ...]:
        with self._lock:
            return tuple(self._buffers.get(name, {}).values())

    def read(self, name: str) -> Snapshot:
        blocks = self.blocks(name)
        if not blocks:
            return Snapshot(np.empty(0), 0.0, 0.0, ())
        values = np.concatenate([decode(b.enc) for b in blocks])
        return Snapshot(
            values,
            max(b.enc.abs_error for b in blocks),
            max(b.enc.rel_error for b in blocks),
            tuple(b.enc.bits for b in blocks),
        )

    @property
    def reserved_bytes(self) -> int:
        reserve = self._reserve
        return 0 if reserve is None else int(reserve.nbytes)

    def nbytes(self) -> int:
        return self._bytes + self.reserved_bytes

    def bytes_by_tier(self) -> dict[int, int]:
        return {bits: n for bits, n in self._by_tier_bytes.items() if n}

    def error_bound(self) -> float:
        with self._lock:
            return self._error_bound()

    def _error_bound(self) -> float:
        heap = self._errors
        while heap and not self._current(heap[0][1], heap[0][2]):
            heapq.heappop(heap)
        return -heap[0][0] if heap else 0.0

    # --- writing (one writer at a time) -------------------------------------------------------

    def write(self, name: str, values: npt.ArrayLike, *, value: float, now: float) -> bool:
        """Append a block. False (and counted) when it cannot fit even after making room."""
        high = value >= self.high_value_threshold
        enc = encode(values, self.top_bits if high else self.tier)
        with self._lock:
            self._seq += 1
            block = Block(self._seq, now, float(value), high, enc)
            self._add(name, block)
            report = PoolReport(0, 0, 0.0)
            self._enforce(report, protect=block)
            if report.rejected:
                self._remove(block.seq)
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
            for held in [t for t in self._ordinary if t > bits]:
                for seq in list(self._ordinary[held]):
                    self._downgrade(seq, bits, report)
            self._enforce(report)
            report.bytes_after = self.nbytes()
            report.error_bound = self._error_bound()
            return report

    # --- bookkeeping (under the lock) ---------------------------------------------------------

    def _current(self, seq: int, bits: int) -> Block | None:
        name = self._where.get(seq)
        block = None if name is None else self._buffers[name].get(seq)
        return block if block is not None and block.enc.bits == bits else None

    def _index(self, b: Block, sign: int) -> None:
        bits, size = b.enc.bits, b.enc.nbytes
        self._bytes += sign * size
        self._by_tier_bytes[bits] = self._by_tier_bytes.get(bits, 0) + sign * size
        if sign > 0:
            heapq.heappush(self._errors, (-b.enc.rel_error, b.seq, bits))
            if b.high_value:
                self._high[b.seq] = None
            else:
                self._ordinary.setdefault(bits, OrderedDict())[b.seq] = None
                if bits > 8:
                    heapq.heappush(self._lowerable, (b.value, b.seq, bits))
        elif b.high_value:
            self._high.pop(b.seq, None)
        else:
            self._ordinary[bits].pop(b.seq, None)
        self._compact()

    def _compact(self) -> None:
        """Drop stale heap entries once they outnumber the live blocks."""
        live = len(self._where)
        for attr in ("_lowerable", "_errors"):
            heap: list[tuple[float, int, int]] = getattr(self, attr)
            if len(heap) > 2 * live + 64:
                fresh = [e for e in heap if self._current(e[1], e[2]) is not None]
                heapq.heapify(fresh)
                setattr(self, attr, fresh)

    def _add(self, name: str, b: Block) -> None:
        self._buffers.setdefault(name, {})[b.seq] = b
        self._where[b.seq] = name
        self._index(b, +1)

    def _remove(self, seq: int) -> None:
        name = self._where.pop(seq)
        buf = self._buffers[name]
        b = buf.pop(seq)
        if not buf:
            del self._buffers[name]
        self._index(b, -1)

    def _downgrade(self, seq: int, bits: int, report: PoolReport) -> None:
        name = self._where[seq]
        b = self._buffers[name][seq]
        self._index(b, -1)
        new = Block(b.seq, b.written_at, b.value, b.high_value, reencode(b.enc, bits))
        self._buffers[name][seq] = new  # same key: the buffer keeps its order
        self._index(new, +1)
        report.downgraded += 1
        self.downgraded += 1

    def _set_reserve(self, on: bool) -> None:
        if on and self._reserve is None:
            values = int(self.budget_bytes * self.reserve_share) // np.dtype(np.longdouble).itemsize
            self._reserve = np.empty(values, dtype=np.longdouble)  # pre-allocated, top tier
        elif not on:
            self._reserve = None

    def _lowest_lowerable(self) -> Block | None:
        heap = self._lowerable
        while heap:
            _, seq, bits = heap[0]
            b = self._current(seq, bits)
            if b is not None:
                return b
            heapq.heappop(heap)
        return None

    def _oldest(self, protect: Block | None) -> int | None:
        """The oldest ordinary block other than ``protect``."""
        best: int | None = None
        for held in self._ordinary.values():
            for seq in held:
                if protect is None or seq != protect.seq:
                    best = seq if best is None else min(best, seq)
                    break
        return best

    def _enforce(self, report: PoolReport, protect: Block | None = None) -> None:
        steps = ladder(self.top_bits)
        while self.nbytes() > self.budget_bytes:
            b = self._lowest_lowerable()
            if b is not None:
                lower = steps[max(0, steps.index(b.enc.bits) - 1)] if b.enc.bits in steps else 8
                self._downgrade(b.seq, lower, report)
                continue
            if self._reserve is not None:
                self._reserve = None  # the reserve is a bet; real data comes first
                continue
            seq = self._oldest(protect)
            if seq is not None:
                self._remove(seq)
                report.evicted += 1
                self.evicted += 1
                continue
            if protect is not None:  # a new block that cannot fit: refuse it, keep what is stored
                report.rejected += 1
                return
            if not self._high:
                return
            seq = next(iter(self._high))
            log.warning("budget below the high-value data alone: evicting high-value block %d", seq)
            self._remove(seq)
            report.evicted_high_value += 1
            self.evicted_high_value += 1
