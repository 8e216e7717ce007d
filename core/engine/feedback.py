"""The feedback reporter: the engine's measurements per interval, as ``FeedbackReport``.

The engine calls ``record_batch(seconds, items)`` after each batch (and ``record_dropped``,
``record_late``, ``set_queue_depth`` where it has them); ``report()`` summarises the interval
(p50/p99 batch latency against the objective, throughput, resident memory against the limit, the
store's bytes and error bound) and starts the next one. Adopting a new decision starts a new
interval, so each report measures one configuration.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from core.engine.compute import BatchSizer
from shared.messages import FLOAT_MAX, FeedbackReport, ScalingDecision

log = logging.getLogger("qas.engine")


def resident_bytes() -> int:
    """This process's resident set size (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def check_batch(seconds: float, items: int) -> None:
    """A batch measurement the reporter can summarise, or the error naming what is wrong."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"record_batch seconds={seconds!r}: must be a number of seconds")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"record_batch seconds={seconds!r}: must be finite and >= 0")
    if isinstance(items, bool) or not isinstance(items, int) or items < 0:
        raise ValueError(f"record_batch items={items!r}: must be a whole number >= 0")


@dataclass
class FeedbackReporter:
    host_id: str
    latency_objective_ms: float
    memory_limit_bytes: int | None = None
    clock: Callable[[], float] = time.time
    rss: Callable[[], int] = resident_bytes
    decision: ScalingDecision | None = None
    batch_size: int = 1
    sizer: BatchSizer | None = None  # its bounds and configured size go in each report
    _latencies: list[float] = field(default_factory=list)
    _items: int = 0
    _dropped: int = 0
    _late: int = 0
    _queue: int = 0
    _since: float = field(default=0.0)
    # Reports whose store error bound was not finite (clamped to FLOAT_MAX: "unbounded"), and why
    clamped_error_bounds: int = 0
    last_clamp_reason: str | None = None

    def __post_init__(self) -> None:
        self._since = self.clock()
        if self.sizer is not None and self.decision is None:
            self.batch_size = self.sizer.size  # before any decision the engine runs at its own

    def record_batch(self, seconds: float, items: int) -> None:
        check_batch(seconds, items)
        self._latencies.append(seconds * 1000.0)
        self._items += items

    def record_dropped(self, n: int = 1) -> None:
        self._dropped += n

    def record_late(self, n: int = 1) -> None:
        self._late += n

    def set_queue_depth(self, n: int) -> None:
        self._queue = max(0, n)

    @property
    def batches(self) -> int:
        return len(self._latencies)

    def adopt(self, d: ScalingDecision, batch_size: int | None = None) -> None:
        """A new configuration: what follows is measured against it."""
        self.decision = d
        self.batch_size = batch_size or d.batch_size
        self._reset(self.clock())

    def _reset(self, now: float) -> None:
        self._latencies, self._items, self._dropped, self._late = [], 0, 0, 0
        self._since = now

    def report(self, *, store_bytes: int = 0, store_error_bound: float = 0.0) -> FeedbackReport:
        now = self.clock()
        lat = np.asarray(self._latencies) if self._latencies else np.zeros(1)
        d = self.decision
        interval = max(1e-9, now - self._since)
        bound = float(store_error_bound)
        if not (math.isfinite(bound) and bound >= 0):
            # e.g. a price <= 0 in a block: its relative error is unbounded. A report that
            # cannot be encoded would kill the reporter, so it says "unbounded" instead.
            self.clamped_error_bounds += 1
            why = f"store error bound {bound!r} is not a finite number >= 0; reported as FLOAT_MAX"
            if why != self.last_clamp_reason:
                log.warning("%s (a stored value is <= 0 or not finite, so relative error is "
                            "unbounded)", why)  # fmt: skip
            self.last_clamp_reason = why
            bound = FLOAT_MAX
        out = FeedbackReport(
            event_time=now,
            host_id=self.host_id,
            interval_seconds=interval,
            decision_id=None if d is None else d.decision_id,
            scaling_factor=None if d is None else d.scaling_factor,
            batches=len(self._latencies),
            batch_size=max(1, self.batch_size),
            precision_bits=None if d is None else int(d.precision_bits),
            latency_p50_ms=float(np.percentile(lat, 50)),
            latency_p99_ms=float(np.percentile(lat, 99)),
            latency_objective_ms=self.latency_objective_ms,
            throughput_per_second=self._items / interval,
            resident_memory_bytes=self.rss(),
            memory_limit_bytes=self.memory_limit_bytes,
            queue_depth=self._queue,
            dropped_ticks=self._dropped,
            late_ticks=self._late,
            store_bytes=store_bytes,
            store_error_bound=min(bound, FLOAT_MAX),
        )
        if self.sizer is not None:
            s = self.sizer
            out = msgspec.structs.replace(out, batch_min=s.minimum, batch_max=s.maximum)
            if s.configured is not None:
                out = msgspec.structs.replace(out, batch_configured=s.configured)
        self._reset(now)
        return out
