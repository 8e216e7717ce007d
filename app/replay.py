"""`qas replay`: a real price file through the pipeline, at its own pace or as fast as possible.

Each row becomes a ``market.ticks`` event; the decider derives market entropy and the profit
heuristic from the ticks and decides at the row's time, the applier enacts at the decision's
time. This machine's current sensor reading (thermal state, free memory) stands for the whole
replay: it is published once, stamped with the last row's time, so it is never stale. Same services, same bus
choice as `qas run` (embedded by default).

Each replay is a run of its own: a run id tags its host id (``HOST~replay-RUN``) and names its
consumer groups, and its decider and applier handle only records of that host. On a Kafka
topic that holds earlier runs' ticks and decisions, those are read past and counted under
``other runs``, never decided, applied or counted, and the replay ends when every row of *this*
run was decided on and every decision of this run has an apply result. So the counts are the
same on Kafka, fresh or not, as on the embedded bus.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TextIO

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
from services.base import ConsumingService, Handler
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
    results: Counter[str] = field(default_factory=Counter)  # apply results by status
    run_id: str = ""
    host_id: str = ""  # the tagged host id this run published under


def _this_run(svc: ConsumingService, handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """Handle only this run's host; count what was handled for it under ``run:ROLE``."""

    def guard(role: str, handler: Handler) -> Handler:
        async def handle(msg: Any) -> None:
            if msg.host_id != svc.host_id:
                svc.stats["other runs"] += 1
                return
            await handler(msg)
            svc.stats[f"run:{role}"] += 1

        return handle

    return {role: guard(role, h) for role, h in handlers.items()}


def _has_state(svc: ConsumingService) -> bool:
    return svc.stats["run:hardware"] >= 1 and svc.stats["run:sensors"] >= 1


class _RunDecider(DeciderService):
    def handlers(self) -> Mapping[str, Handler]:
        return _this_run(self, super().handlers())


class _RunApplier(ApplierService):
    def handlers(self) -> Mapping[str, Handler]:
        return _this_run(self, super().handlers())


async def replay(
    opts: Options,
    series: Series,
    *,
    speed: float | None = None,
    symbol: str = "replay",
    sink: JsonLines | None = None,
    progress: Progress | None = None,
    on_decision: Callable[[ScalingDecision], None] | None = None,
    run_id: str | None = None,
) -> ReplayResult:
    """speed None: as fast as possible; else rows are spaced by their time gap / speed."""
    run = run_id or secrets.token_hex(4)
    host = f"{opts.resolved_host_id}~replay-{run}"
    result = ReplayResult(series, run_id=run, host_id=host)
    keys = signing_keys(opts, ("decider", "applier"))
    bus = make_bus(opts)
    await bus.start()
    stop = asyncio.Event()
    install_signal_handlers(stop)
    pool = TieredPool(budget_bytes=64 << 20)
    decider = _RunDecider(bus, opts.settings, host, event_clock=True,
                          group=f"qas-replay-{run}-decider", signer=keys)  # fmt: skip
    applier = _RunApplier(bus, opts.settings, host, pool=pool, enactors=make_enactors(opts, pool),
                          event_clock=True, group=f"qas-replay-{run}-applier",
                          verifier=keys)  # fmt: skip

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
                t.hardware, host, encode(msgspec.structs.replace(snap, event_time=first, host_id=host))
            )
            await bus.publish(
                t.sensors, host, encode(msgspec.structs.replace(live, event_time=last, host_id=host))
            )
            # On Kafka each topic is fetched on its own: ticks must not overtake the machine's
            # state, or the first decisions are made without it (confidence 0.14, not applied).
            async with asyncio.timeout(60.0):
                for svc in (decider, applier):
                    await svc.until(partial(_has_state, svc))
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
                # every row of this run decided on, then every decision of it applied or skipped
                await decider.until(lambda: decider.stats["run:ticks"] >= n)
                await applier.until(
                    lambda: applier.stats["run:decisions"] >= decider.stats["decisions"]
                )
            stop.set()
            del tasks
        log.info("replayed %d rows in %.1f s: %d decisions", n, time.monotonic() - started,
                 len(result.decisions))  # fmt: skip
        result.applied = applier.stats["applied"]
        result.results = Counter({k: applier.stats[k] for k in ("applied", "skipped", "failed")})
        if decider.stats["other runs"] or applier.stats["other runs"]:
            log.info("read past %d records of other runs", decider.stats["other runs"]
                     + applier.stats["other runs"])  # fmt: skip
    finally:
        stop.set()
        await bus.stop()
    return result
