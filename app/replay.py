"""`qas replay`: a real price file through the pipeline, at its own pace or as fast as possible.

Each row becomes a ``market.ticks`` event; the decider derives market entropy and the profit
heuristic from the ticks and decides at the row's time, the applier enacts at the decision's
time. This machine's current sensor reading (thermal state, free memory) stands for the whole
replay: it is published once, stamped with the last row's time, so it is never stale. Same services, same bus
choice as `qas run` (embedded by default).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import msgspec

from app.runtime import (
    JsonLines,
    Options,
    install_signal_handlers,
    make_bus,
    make_enactors,
    make_probe,
    signing_keys,
)
from services.applier.pool import TieredPool
from services.applier.service import ApplierService
from services.decider.service import DeciderService
from shared.csvseries import Series
from shared.messages import PriceTick, ScalingDecision, encode

log = logging.getLogger("qas.replay")


class Progress:
    """A one-line bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.total, self.out = total, out
        self.enabled = out.isatty()
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done < self.total):
            return
        self._last = now
        width = 30
        filled = int(width * done / max(1, self.total))
        self.out.write(f"\rreplay [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}")
        if done >= self.total:
            self.out.write("\n")
        self.out.flush()


@dataclass
class ReplayResult:
    series: Series
    decisions: list[ScalingDecision] = field(default_factory=list)
    applied: int = 0


async def replay(
    opts: Options,
    series: Series,
    *,
    speed: float | None = None,
    symbol: str = "replay",
    sink: JsonLines | None = None,
    progress: Progress | None = None,
    on_decision: Callable[[ScalingDecision], None] | None = None,
) -> ReplayResult:
    """speed None: as fast as possible; else rows are spaced by their time gap / speed."""
    host = opts.resolved_host_id
    result = ReplayResult(series)
    keys = signing_keys(opts, ("decider", "applier"))
    bus = make_bus(opts)
    await bus.start()
    stop = asyncio.Event()
    install_signal_handlers(stop)
    pool = TieredPool(budget_bytes=64 << 20)
    decider = DeciderService(bus, opts.settings, host, event_clock=True, group="qas-replay-decider",
                             signer=keys)  # fmt: skip
    applier = ApplierService(bus, opts.settings, host, pool=pool, enactors=make_enactors(opts, pool),
                             event_clock=True, group="qas-replay-applier", verifier=keys)  # fmt: skip

    def decided(d: ScalingDecision) -> None:
        result.decisions.append(d)
        if sink is not None:
            sink.decision(d)
        if on_decision is not None:
            on_decision(d)

    decider.on_decision = decided
    if sink is not None:
        applier.on_result = sink.applied
    probe = make_probe(opts)
    t = opts.settings.topics
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(decider.run(stop)), tg.create_task(applier.run(stop))]
            snap, live = (
                await asyncio.to_thread(probe.snapshot),
                await asyncio.to_thread(probe.sample),
            )
            first = float(series.times[0]) if series.times.size else time.time()
            last = float(series.times[-1]) if series.times.size else first
            await bus.publish(
                t.hardware, host, encode(msgspec.structs.replace(snap, event_time=first))
            )
            await bus.publish(
                t.sensors, host, encode(msgspec.structs.replace(live, event_time=last))
            )
            started, prev = time.monotonic(), first
            for i, (when, price) in enumerate(
                zip(series.times.tolist(), series.prices.tolist(), strict=True)
            ):
                if stop.is_set():
                    break
                if speed is not None and i:
                    await asyncio.sleep(max(0.0, (when - prev) / speed))
                prev = when
                await bus.publish(t.ticks, host, encode(PriceTick(event_time=when, host_id=host, symbol=symbol,
                                                                  price=price)))  # fmt: skip
                if progress is not None:
                    progress.update(i + 1)
                if i % 256 == 0:
                    await asyncio.sleep(0)  # let the services keep up at --speed max
            n = i + 1 if series.times.size else 0
            async with asyncio.timeout(max(30.0, n / 200)):
                await decider.drained(t.ticks, n)
                # every decision applied (or skipped) before we stop
                await applier.drained(t.decisions, decider.stats["decisions"])
            stop.set()
            del tasks
        log.info("replayed %d rows in %.1f s: %d decisions", n, time.monotonic() - started,
                 len(result.decisions))  # fmt: skip
        result.applied = applier.stats["applied"]
    finally:
        stop.set()
        await bus.stop()
    return result
