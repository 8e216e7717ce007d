"""The precision-tiered memory pool: named buffers of encoded blocks under a hard byte budget.

Each block is tagged with the value of its time (the profit potential when it was written) and
is high-value above a threshold (0.8). High-value blocks are written at the top tier and never
downgraded. A decision sets the tier for everything else: blocks above it are re-encoded down
(re-encoding up cannot bring back precision already dropped, so lower blocks stay). Over budget,
the lowest-value, oldest blocks are downgraded one tier at a time to 8 bits; if that is not
enough, the oldest low-value blocks are evicted (counted). Only a budget that high-value data
alone exceeds evicts the oldest high-value block, counted separately and logged.

With ``lossless_first`` the pool follows the storage ladder instead: ordinary blocks are written
in float64, and each buffer's newest ``hot_blocks`` stay so. Over budget, the oldest blocks past
the hot window (any value) are first compressed losslessly (``ticks``, which stores a block with
no decimal grid as ``lossless``); then, only while that cannot meet the budget, blocks tagged
low-value (value <= ``low_value_threshold``) go down the lossy tiers, never below the decided
tier; eviction comes last. A decision's tier is then how far down the ladder the pool may go, not
a re-encoding of everything. Each step is counted in the report (bytes before and after).

One writer, many readers: the writer holds a lock; blocks are immutable and a buffer's blocks are
snapshotted by a reader in one call, so a reader decodes without any lock.

Costs do not grow with what is held: bytes per tier are running totals, the next block to
downgrade comes off a heap ordered by (value, age), the next to evict off an age-ordered index,
and the error bound off a heap of per-block bounds (stale heap entries are skipped and compacted).
A decision that changes neither tier nor budget costs O(1); one that does, O(blocks it touches).
On the ladder, a block enters two queues when it leaves its buffer's hot window: the oldest-first
queue of blocks to compress, and (when tagged low-value) the heap of blocks that may go lossy; so
a write over budget costs O(log n), however many blocks or buffers are held.

The engine may archive a block it will not read again (``archive``): the block becomes low-value
and may go down to the lowest tier (8 bits) whatever the decided tier, still after every lossless
step; the decided tier keeps binding the blocks the engine still reads.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace

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
    archived: bool = False  # the engine will not read it again (``TieredPool.archive``)


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
    compressed: int = 0  # blocks compressed losslessly (lossless_first)
    compressed_bytes_before: int = 0
    compressed_bytes_after: int = 0


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
    lossless_first: bool = False  # the storage ladder (see the module's docstring)
    hot_blocks: int = 1  # per buffer, the newest blocks kept in float64 (lossless_first)
    low_value_threshold: float = 0.3  # at or below: the block may go lossy (lossless_first)
    compressed: int = 0
    archived: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        # name -> {seq: Block}, in write order. A reader snapshots one with tuple(d.values()),
        # a single C call under the GIL; the writer only sets or deletes single keys.
        self._buffers: dict[str, dict[int, Block]] = {}
        self._seq = 0
        self._reserve: np.ndarray | None = None
        # Running totals and priority structures: a decision that changes neither tier nor
        # budget costs O(1); one that does costs O(blocks it touches) (each O(log n)).
        self._where: dict[int, str] = {}  # seq -> buffer name
        self._data_bytes = 0
        self._tier_bytes: dict[int, int] = {}
        self._low: OrderedDict[int, None] = OrderedDict()  # low-value seqs, oldest first
        self._high: OrderedDict[int, None] = OrderedDict()  # high-value seqs, oldest first
        self._by_bits: dict[int, dict[int, None]] = {}  # low-value seqs by their tier
        self._lowerable: list[tuple[float, int, int]] = []  # heap (value, seq, bits), lazy
        self._errors: list[tuple[float, int, int]] = []  # heap (-rel_error, seq, bits), lazy
        self._plain: OrderedDict[int, None] = OrderedDict()  # uncompressed >= 64-bit, oldest first
        self._no_gain: set[int] = set()  # low-value seqs a lossy tier would not make smaller
        # the ladder's queues (lossless_first), both filled as blocks leave the hot window and
        # both lazy: an entry whose block changed or went is skipped when it comes up
        self._cold_plain: OrderedDict[int, None] = OrderedDict()  # to compress, oldest first
        self._lossy: list[tuple[float, int, int]] = []  # heap (value, seq, bits) of cold low-value

    # --- reading (no lock) ----------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._buffers)

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

    def block(self, seq: int) -> Block | None:
        """The block written as ``seq``, None once it is evicted."""
        return self._block(seq)

    def blocks(self, name: str) -> tuple[Block, ...]:
        buf = self._buffers.get(name)
        return () if buf is None else tuple(buf.values())

    def __len__(self) -> int:
        """How many blocks are held."""
        return len(self._where)

    @property
    def reserved_bytes(self) -> int:
        reserve = self._reserve
        return 0 if reserve is None else int(reserve.nbytes)

    def nbytes(self) -> int:
        return self._data_bytes + self.reserved_bytes

    def bytes_by_tier(self) -> dict[int, int]:
        return {bits: n for bits, n in list(self._tier_bytes.items()) if n}

    def error_bound(self) -> float:
        with self._lock:
            return self._error_bound()

    # --- the index (writer, under the lock) -------------------------------------------------

    def _block(self, seq: int) -> Block | None:
        name = self._where.get(seq)
        return None if name is None else self._buffers[name].get(seq)

    def _index(self, name: str, b: Block) -> None:
        buf = self._buffers.setdefault(name, {})
        buf[b.seq] = b
        self._where[b.seq] = name
        self._count(b, +1)
        (self._high if b.high_value else self._low)[b.seq] = None
        if self.lossless_first and len(buf) > self.hot_blocks:  # one block leaves the window
            seq = next(itertools.islice(reversed(buf), self.hot_blocks, None))
            if seq in self._plain:
                self._cold_plain[seq] = None
            self._queue_lossy(buf[seq])

    def _queue_lossy(self, b: Block) -> None:
        """Offer a block past the hot window to the lossy heap, if it may ever go lossy."""
        if not b.high_value and b.value <= self.low_value_threshold and b.enc.bits > 8:
            heapq.heappush(self._lossy, (b.value, b.seq, b.enc.bits))

    def _hot_seqs(self) -> set[int]:
        return {seq for name in self._buffers for seq in self._hot_seqs_of(name)}

    def _requeue_lossy(self) -> None:
        """Rebuild the lossy heap (the decided tier changed: blocks skipped may now go)."""
        hot = self._hot_seqs()
        self._lossy = []
        for buf in self._buffers.values():
            for b in buf.values():
                if b.seq not in hot:
                    self._queue_lossy(b)
        heapq.heapify(self._lossy)

    def _count(self, b: Block, sign: int) -> None:
        bits, n = b.enc.bits, b.enc.nbytes
        self._data_bytes += sign * n
        self._tier_bytes[bits] = self._tier_bytes.get(bits, 0) + sign * n
        if self.lossless_first and bits >= 64 and not b.enc.tier:
            if sign > 0:
                self._plain[b.seq] = None
            else:
                self._plain.pop(b.seq, None)
        if not b.high_value:
            if sign > 0:
                self._by_bits.setdefault(bits, {})[b.seq] = None
                if bits > 8 and not self.lossless_first:
                    heapq.heappush(self._lowerable, (b.value, b.seq, bits))
            else:
                self._by_bits[bits].pop(b.seq, None)
        if sign > 0:
            heapq.heappush(self._errors, (-b.enc.rel_error, b.seq, bits))
            self._compact()

    def _compact(self) -> None:
        """Drop stale heap entries once they outnumber the live ones (amortised O(1))."""
        live = len(self._where) + 64
        if len(self._errors) > 2 * live:
            self._errors = [e for e in self._errors if self._live(e)]
            heapq.heapify(self._errors)
        if len(self._lowerable) > 2 * live:
            self._lowerable = [e for e in self._lowerable if self._live(e)]
            heapq.heapify(self._lowerable)
        if len(self._lossy) > 2 * live:
            self._lossy = [e for e in self._lossy if self._live_lossy(e)]
            heapq.heapify(self._lossy)
        if len(self._cold_plain) > 2 * live:
            self._cold_plain = OrderedDict((q, None) for q in self._cold_plain if q in self._plain)

    def _live(self, entry: tuple[float, int, int]) -> bool:
        b = self._block(entry[1])
        return b is not None and b.enc.bits == entry[2]

    def _live_lossy(self, entry: tuple[float, int, int]) -> bool:
        b = self._block(entry[1])
        return b is not None and b.enc.bits == entry[2] and b.value == entry[0]

    def _swap(self, name: str, old: Block, new: Block) -> None:
        self._count(old, -1)
        self._buffers[name][old.seq] = new
        self._count(new, +1)

    def _drop(self, seq: int) -> Block:
        name = self._where.pop(seq)
        buf = self._buffers[name]
        b = buf.pop(seq)
        if not buf:
            del self._buffers[name]
        self._count(b, -1)
        (self._high if b.high_value else self._low).pop(seq, None)
        self._no_gain.discard(seq)
        return b

    def _error_bound(self) -> float:
        while self._errors:
            neg, seq, bits = self._errors[0]
            b = self._block(seq)
            if b is not None and b.enc.bits == bits:
                return -neg
            heapq.heappop(self._errors)
        return 0.0

    # --- writing (one writer at a time) ---------------------------------------------------

    def write(self, name: str, values: npt.ArrayLike, *, value: float, now: float) -> bool:
        """Append a block. False (and counted) when it cannot fit even after making room."""
        high = value >= self.high_value_threshold
        plain = 64 if self.lossless_first else self.tier  # the hot window is float64
        enc = encode(values, self.top_bits if high else plain)
        with self._lock:
            self._seq += 1
            block = Block(self._seq, now, float(value), high, enc)
            self._index(name, block)
            report = PoolReport(0, 0, 0.0)
            self._enforce(report, protect=block.seq)
            if report.rejected:
                if block.seq in self._where:
                    self._drop(block.seq)
                self.rejected_writes += 1
                return False
            return True

    def archive(self, seq: int) -> bool:
        """Mark a block its writer will not read again: it becomes low-value (value 0) and may
        go down to 8 bits, still after every lossless step. False if it is gone or archived."""
        with self._lock:
            b = self._block(seq)
            if b is None or b.archived:
                return False
            new = replace(b, value=0.0, high_value=False, archived=True)
            name = self._where[seq]
            self._swap(name, b, new)
            if b.high_value:  # archived data is old: first among the low-value to be evicted
                del self._high[seq]
                self._low[seq] = None
                self._low.move_to_end(seq, last=False)
            self._no_gain.discard(seq)
            if seq not in self._hot_seqs_of(name):
                self._queue_lossy(new)
            self.archived += 1
            return True

    def _hot_seqs_of(self, name: str) -> set[int]:
        return set(itertools.islice(reversed(self._buffers[name]), self.hot_blocks))

    def apply(
        self, bits: int, budget_bytes: int | None = None, *, reserve: bool | None = None
    ) -> PoolReport:
        """Enact a decision: the tier for ordinary data, the budget, the predictive reserve."""
        with self._lock:
            before = self.nbytes()
            requeue = bits != self.tier and self.lossless_first
            if bits != self.tier:
                self._no_gain.clear()  # a lower tier may gain where the last did not
            self.tier = bits
            if requeue:
                self._requeue_lossy()
            if budget_bytes is not None:
                self.budget_bytes = budget_bytes
            if reserve is not None:
                self._set_reserve(reserve)
            report = PoolReport(before, before, 0.0)
            rank: dict[int, int] = {b: i for i, b in enumerate(ladder(self.top_bits))}
            target = rank.get(bits, 0)
            eager = (
                [] if self.lossless_first else [b for b in self._by_bits if rank.get(b, 0) > target]
            )
            for held in eager:
                for seq in list(self._by_bits[held]):
                    b = self._block(seq)
                    if b is not None:
                        self._swap(self._where[seq], b, self._downgrade(b, bits, report))
            self._enforce(report)
            report.bytes_after = self.nbytes()
            report.error_bound = self._error_bound()
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
        return replace(b, enc=reencode(b.enc, bits))

    def _floor(self, b: Block) -> int:
        """The lowest tier a low-value block may go to: 8 bits once archived, else the decided."""
        return 8 if b.archived else max(8, self.tier)

    def _lossy_next(self, report: PoolReport) -> bool:
        """Re-encode the next low-value block at its floor, where that is smaller."""
        b = self._next_lossy()
        if b is None:
            return False
        enc = reencode(b.enc, self._floor(b))
        if enc.nbytes >= b.enc.nbytes:  # e.g. block16 of a block ticks already holds in less
            self._no_gain.add(b.seq)
            return True
        report.downgraded += 1
        self.downgraded += 1
        self._swap(self._where[b.seq], b, replace(b, enc=enc))
        return True

    def _compress_next(self, report: PoolReport) -> bool:
        """Compress the oldest uncompressed block past its buffer's hot window; False if none."""
        while self._cold_plain:
            seq, _ = self._cold_plain.popitem(last=False)
            if seq not in self._plain:
                continue  # went lossy, was evicted, or was rewritten since it was queued
            name = self._where[seq]
            b = self._buffers[name][seq]
            # float64 input is exact in every tier >= 64 bits, so its float64 is the value
            enc = encode(decode(b.enc), "ticks")
            if enc.nbytes >= b.enc.nbytes:  # a few values: headers cost more than they save
                self._plain.pop(seq)
                return True
            new = replace(b, enc=enc)
            self._swap(name, b, new)
            self._queue_lossy(new)
            report.compressed += 1
            self.compressed += 1
            report.compressed_bytes_before += b.enc.nbytes
            report.compressed_bytes_after += new.enc.nbytes
            return True
        return False

    def _next_lowerable(self) -> Block | None:
        """The lowest-value, oldest low-value block above 8 bits (not on the ladder)."""
        while self._lowerable:
            _, seq, bits = self._lowerable[0]
            b = self._block(seq)
            if b is not None and b.enc.bits == bits and not b.high_value and bits > 8:
                return b
            heapq.heappop(self._lowerable)
        return None

    def _next_lossy(self) -> Block | None:
        """The lowest-value, oldest cold block tagged low-value and above its floor."""
        while self._lossy:
            value, seq, bits = self._lossy[0]
            b = self._block(seq)
            if (b is not None and b.enc.bits == bits and b.value == value
                    and value <= self.low_value_threshold and bits > self._floor(b)
                    and seq not in self._no_gain):  # fmt: skip
                return b
            heapq.heappop(self._lossy)  # stale, or cannot go lower until the tier changes
        return None

    def _oldest(self, seqs: OrderedDict[int, None], protect: int | None) -> int | None:
        for seq in seqs:  # the protected block is the newest: at most one step past the first
            if seq != protect:
                return seq
        return None

    def _enforce(self, report: PoolReport, protect: int | None = None) -> None:
        steps = ladder(self.top_bits)
        while self.nbytes() > self.budget_bytes:
            if self.lossless_first:  # lossy only through _lossy_next: low-value blocks alone
                if self._compress_next(report) or self._lossy_next(report):
                    continue
            elif (b := self._next_lowerable()) is not None:
                lower = steps[max(0, steps.index(b.enc.bits) - 1)] if b.enc.bits in steps else 8
                self._swap(self._where[b.seq], b, self._downgrade(b, lower, report))
                continue
            if self._reserve is not None:
                self._reserve = None  # the reserve is a bet; real data comes first
                continue
            seq = self._oldest(self._low, protect)
            if seq is not None:
                self._drop(seq)
                report.evicted += 1
                self.evicted += 1
                continue
            if protect is not None:  # a new block that cannot fit: refuse it, keep what is stored
                report.rejected += 1
                return
            seq = self._oldest(self._high, None)
            if seq is None:
                return
            log.warning("budget below the high-value data alone: evicting high-value block %d", seq)
            self._drop(seq)
            report.evicted_high_value += 1
            self.evicted_high_value += 1
