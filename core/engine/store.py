"""The engine-side tiered store: the engine's own arrays, held losslessly unless told otherwise.

It is the applier's precision-tiered pool (``services.applier.pool.TieredPool``, enacted through
the same ``PoolEnactor``), owned by the engine process: one implementation. The engine appends its
series in chunks (a pending float64 tail per series is flushed to the pool every ``chunk``
values, so blocks are large enough for the codecs; a block the pool refuses stays pending and is
retried, so the newest data is never the data lost), tags each chunk with its value (the profit
potential of its window: at or above 0.8 it is kept at the top tier and never downgraded), and
reads back float64.

By default (``lossless_first``) the pool follows the storage ladder: each series' newest
``hot_blocks`` stay float64, older blocks are compressed losslessly (``ticks``, or ``lossless``
where no decimal grid is found) when the budget asks for it, and only blocks tagged low-value
(``value <= low_value_threshold``) may go down the lossy tiers, never below the decided tier
(64 until a decision says less: nothing is lossy before one does); eviction comes last. A value
the store serves for a block the engine did not tag low-value is therefore exact, or absent.
``lossless_first=False`` is the older behaviour: a decision re-encodes everything that is not
high-value to its tier. The budget is combined in one place, ``budget()``: the memory
controller's (``limit_budget``) where it set one, else the decided one, either capped by
``max_budget_bytes``; ``nbytes`` and
``error_bound`` are what the engine publishes in its feedback.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

import msgspec
import numpy as np
import numpy.typing as npt

from core.engine.errors import ClientClosed, StoreValueError
from core.engine.options import check
from services.applier.actuators import PoolEnactor
from services.applier.pool import PoolReport, TieredPool
from shared.codecs import decode
from shared.messages import ActuatorResult, ScalingDecision

F64 = npt.NDArray[np.float64]


class EngineStore:
    def __init__(
        self,
        budget_bytes: int,
        *,
        max_budget_bytes: int | None = None,
        tier: int = 64,
        chunk: int = 256,
        high_value_threshold: float = 0.8,
        clock: Callable[[], float] = time.time,
        retry_writes: int = 4,
        lossless_first: bool = True,
        hot_blocks: int = 1,
        low_value_threshold: float = 0.3,
    ) -> None:
        check("EngineStore", {
            "budget_bytes": budget_bytes, "max_budget_bytes": max_budget_bytes, "tier": tier,
            "chunk": chunk, "high_value_threshold": high_value_threshold, "clock": clock,
            "retry_writes": retry_writes, "lossless_first": lossless_first,
            "hot_blocks": hot_blocks, "low_value_threshold": low_value_threshold,
        })  # fmt: skip
        self.pool = TieredPool(
            budget_bytes=budget_bytes, high_value_threshold=high_value_threshold, tier=tier,
            lossless_first=lossless_first, hot_blocks=hot_blocks,
            low_value_threshold=low_value_threshold,
        )  # fmt: skip
        self.enactor = PoolEnactor(self.pool, name="engine_store")
        self.max_budget_bytes = max_budget_bytes
        self.controller_budget_bytes: int | None = None  # the memory controller's cap
        self._decided_budget = budget_bytes
        self.chunk = chunk
        self.clock = clock
        self._pending: dict[str, list[F64]] = {}
        self._pending_len: dict[str, int] = {}  # values pending per series (kept, not re-summed)
        self._pending_bytes = 0  # one int: nbytes() reads it from another thread without iterating
        self._pending_value: dict[str, float] = {}
        self._next: dict[str, int] = {}  # per series, the index of its first pending value
        # per series, its blocks' first indices (ascending) and their seqs, for ``range``
        self._starts: dict[str, list[int]] = {}
        self._seqs: dict[str, list[int]] = {}
        self.retry_writes = retry_writes
        self.rejected = 0  # writes the pool refused (kept pending and retried)
        self.dropped_values = 0  # values dropped after ``retry_writes`` refused writes
        self._gaps: dict[str, int] = {}  # NaN values appended per series (stored as gaps)
        self._archived: dict[str, int] = {}  # per series, the index up to which it is archived
        self.refused_appends = 0  # appends refused whole (an infinity)
        self.closed = False

    # --- writing ----------------------------------------------------------------------------

    def append(self, name: str, values: npt.ArrayLike, *, value: float | None = None) -> bool:
        """Add values to a series; ``value`` is how much this window matters (0..1).

        An append without a ``value`` is not tagged low-value: it is held as ordinary data,
        between ``low_value_threshold`` and ``high_value_threshold``, so it is never lossy.

        False when the pool refused a block (its budget is below its high-value data alone):
        the values then stay pending, exact, and are retried with the next flush; at most
        ``retry_writes`` refused writes are kept, the oldest dropped first (counted).

        An append holding an infinity is refused whole (``StoreValueError``) and leaves the
        series as it was. NaN is stored as a gap (a missing value) and counted: ``gaps(name)``.
        """
        if self.closed:
            raise ClientClosed(f"EngineStore.append({name!r}) after the store was closed")
        arr = np.array(values, dtype=np.float64).ravel()  # a copy: the caller may reuse its array
        if not np.isfinite(arr).all():  # the exact counts only off the hot path
            nan = np.isnan(arr)
            inf = int(np.isinf(arr).sum())
            if inf:
                self.refused_appends += 1
                raise StoreValueError(
                    f"append to {name!r} refused: {inf} infinite value(s) among {len(arr)}; "
                    "nothing of it was stored"
                )
            if nan.any():
                self._gaps[name] = self._gaps.get(name, 0) + int(nan.sum())
        pending = self._pending.setdefault(name, [])
        self._pending_len[name] = self._pending_len.get(name, 0) + len(arr)
        self._pending_bytes += arr.nbytes
        pending.append(arr)
        if value is None:
            value = (self.pool.low_value_threshold + self.pool.high_value_threshold) / 2
        self._pending_value[name] = max(self._pending_value.get(name, 0.0), value)
        if self._pending_len[name] >= self.chunk:
            return self.flush(name)
        return True

    def gaps(self, name: str | None = None) -> int:
        """NaN values appended to series ``name`` (all series: None), stored as gaps."""
        return sum(self._gaps.values()) if name is None else self._gaps.get(name, 0)

    def close(self) -> None:
        """Refuse further appends (``ClientClosed``); reads still answer. Idempotent."""
        self.closed = True

    def flush(self, name: str | None = None) -> bool:
        ok = True
        for key in [name] if name is not None else list(self._pending):
            pending = self._pending.get(key)
            if not pending:
                continue
            values = np.concatenate(pending)
            if self.pool.write(
                key, values, value=self._pending_value.get(key, 0.0), now=self.clock()
            ):
                self._pending[key] = []
                self._pending_len[key] = 0
                self._pending_bytes -= values.nbytes
                self._pending_value[key] = 0.0
                self._index_written(key, len(values))
                continue
            ok = False
            self.rejected += 1
            while len(pending) > self.retry_writes:
                dropped = pending.pop(0)
                n = len(dropped)
                self._pending_len[key] -= n
                self._pending_bytes -= dropped.nbytes
                self.dropped_values += n
                self._next[key] = self._next.get(key, 0) + n  # a gap: those indices stay empty
        return ok

    def enact(self, d: ScalingDecision) -> ActuatorResult:
        """Enact a decision: its tier, and the budget ``budget()`` makes of its own."""
        self._decided_budget = d.memory_budget_bytes
        if self.budget() != d.memory_budget_bytes:
            d = msgspec.structs.replace(d, memory_budget_bytes=self.budget())
        return self.enactor.enact(d)

    def budget(self) -> int:
        """The budget in force: the memory controller's where it set one, else the decided
        one, either capped by ``max_budget_bytes``. The controller's replaces the decided one
        (rather than capping it) because it is measured against the engine's own use and
        limit, while the decider's is a share of the host's memory chosen without them."""
        own = self.controller_budget_bytes
        budget = self._decided_budget if own is None else own
        cap = self.max_budget_bytes
        return budget if cap is None else min(budget, cap)

    def limit_budget(self, budget: int | None) -> PoolReport:
        """Set the memory controller's budget (None: none, the decided one applies) and apply
        it now: the store goes down its ladder, or may grow again, at once."""
        self.controller_budget_bytes = budget
        return self.pool.apply(self.pool.tier, self.budget())

    def _index_written(self, key: str, n: int) -> None:
        blocks = self.pool.blocks(key)
        starts, seqs = self._starts.setdefault(key, []), self._seqs.setdefault(key, [])
        if blocks:  # the block just written is the series' newest
            starts.append(self._next.get(key, 0))
            seqs.append(blocks[-1].seq)
        self._next[key] = self._next.get(key, 0) + n
        if len(seqs) > 2 * len(blocks) + 64:  # forget evicted blocks, amortised
            held = {b.seq for b in blocks}
            keep = [i for i, q in enumerate(seqs) if q in held]
            self._starts[key] = [starts[i] for i in keep]
            self._seqs[key] = [seqs[i] for i in keep]

    def archive(self, name: str, stop: int) -> int:
        """Tell the store the engine will not read values before index ``stop`` of a series
        again: each block wholly before it becomes low-value archive, which may go down to 8
        bits once lossless compression cannot meet the budget (``TieredPool.archive``). What
        the engine still reads keeps its tags. Returns the blocks archived by this call."""
        starts, seqs = self._starts.get(name, []), self._seqs.get(name, [])
        done = self._archived.get(name, 0)
        i = bisect.bisect_left(starts, done)
        archived = 0
        while i < len(starts):
            block = self.pool.block(seqs[i])
            end = starts[i] + (block.enc.n if block is not None else 0)
            if block is not None and end > stop:
                break
            if block is not None and self.pool.archive(seqs[i]):
                archived += 1
            done = max(done, end)
            i += 1
        self._archived[name] = done
        return archived

    # --- reading ----------------------------------------------------------------------------

    def range(self, name: str, start: int, stop: int) -> F64:
        """Values ``[start, stop)`` of a series by index (0: its first value ever appended), as
        float64, decoding only the blocks that hold them. An index the store no longer holds
        (evicted, or dropped after refused writes) reads as NaN, a gap: nothing is made up."""
        stop = max(start, stop)
        out = np.full(stop - start, np.nan)
        starts, seqs = self._starts.get(name, []), self._seqs.get(name, [])
        for i in range(max(0, bisect.bisect_right(starts, start) - 1), len(starts)):
            first = starts[i]
            if first >= stop:
                break
            block = self.pool.block(seqs[i])
            if block is None or first + block.enc.n <= start:
                continue  # evicted, or wholly before ``start``
            lo, hi = max(start, first), min(stop, first + block.enc.n)
            out[lo - start : hi - start] = decode(block.enc)[lo - first : hi - first]
        at = self._next.get(name, 0)
        for arr in self._pending.get(name, []):
            lo, hi = max(start, at), min(stop, at + len(arr))
            if lo < hi:
                out[lo - start : hi - start] = arr[lo - at : hi - at]
            at += len(arr)
        return out

    def tail(self, name: str, n: int) -> F64:
        """The last ``n`` values of a series as float64 (decoding only the blocks needed)."""
        pending = np.concatenate(self._pending.get(name) or [np.empty(0)])
        need = n - len(pending)
        parts: list[F64] = []
        if need > 0:
            got = 0
            for block in reversed(self.pool.blocks(name)):
                values = decode(block.enc)
                parts.append(values)
                got += len(values)
                if got >= need:
                    break
            parts.reverse()
        parts.append(pending)
        out = np.concatenate(parts)
        return out[-n:] if n > 0 else out[:0]

    def read(self, name: str) -> F64:
        """The whole series as float64."""
        stored = self.pool.read(name).values
        return np.concatenate([stored, *self._pending.get(name, [])])

    @property
    def tier(self) -> int:
        return self.pool.tier

    @property
    def budget_bytes(self) -> int:
        return self.pool.budget_bytes

    def nbytes(self) -> int:
        """Bytes held: the pool's encoded blocks plus the float64 pending tails."""
        return self.pool.nbytes() + self._pending_bytes

    def error_bound(self) -> float:
        """The largest relative error bound of any stored value (pending tails are exact)."""
        return self.pool.error_bound()
