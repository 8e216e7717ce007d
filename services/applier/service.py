"""Applier service: gate, enact, acknowledge on qas.applied, export metrics.

Idempotent by decision id: a redelivered decision is acknowledged again with its first result,
never enacted twice. Before anything else a decision must pass verification (signature by a key
we hold, shared/signing.py) and replay protection (event-time window, per-host sequence,
shared/freshness.py); one that fails is ``rejected``: acknowledged with the reason, counted,
dead-lettered, and it touches nothing, not even the gauges.

With a state file (``--state-dir``, services/applier/state.py) the per-host watermark survives a
restart without the broker: it is written after a decision is enacted and before it is
acknowledged, so nothing is acknowledged that was not recorded. A crash between enacting and
recording re-enacts that decision once on redelivery, which is harmless: enacting a decision
sets limits to the values it names, so doing it twice leaves what doing it once left. A missing
or corrupt state file is a warning, and then the strict start: a host with no watermark accepts
only decisions made after this applier started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from services.applier.metrics import Metrics
from services.applier.pool import TieredPool
from services.applier.state import StateFile
from services.base import ConsumingService, Handler
from services.bus.base import Bus, BusError, Record
from services.bus.consume import CURRENT_RECORD, Rejected, publish_retrying
from shared.apply_policy import apply_delay, engine_config, skip_reason
from shared.config import Settings
from shared.enactor import Enactor
from shared.freshness import Watermark, freshness_fault, watermark
from shared.messages import (
    ApplyResult,
    HardwareSnapshot,
    PriceTick,
    ScalingDecision,
    SensorReading,
    decode,
    encode,
)
from shared.signing import KeyRing, verify
from shared.watermarks import newer

log = logging.getLogger("qas.applier")


def applier_group(host_id: str) -> str:
    """One consumer group per host: every host's applier must read its own decisions, wherever
    they are partitioned (a shared group would split the partitions among the hosts)."""
    return f"qas-applier.{host_id}"


@dataclass
class _Pending:
    decision: ScalingDecision
    task: asyncio.Task[None]
    record: Record | None  # where it came from: not committed until answered
    deadline: float  # time.monotonic() when it is enacted

SEEN_IDS = 10_000
READ_BACK_SECONDS = 15.0
APPLIED_TAIL = 2000  # last apply results per partition read back at a (re)start
TICK_BLOCK = 1024  # prices are written to the pool in blocks of this many ticks ...
TICK_FLUSH_SECONDS = 5.0  # ... else one timer for all symbols sweeps the buffers this often,
TICK_MIN_BLOCK = 64  # writing those with at least this many ticks ...
TICK_MAX_WAIT_SECONDS = 60.0  # ... or whose oldest tick waited this long (slow feeds)


class ApplierService(ConsumingService):
    service = "applier"

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        host_id: str,
        *,
        metrics: Metrics | None = None,
        enactors: Sequence[Enactor] = (),
        clock: Callable[[], float] = time.time,
        group: str | None = None,
        honour_jitter: bool = True,
        pool: TieredPool | None = None,
        event_clock: bool = False,
        verifier: KeyRing | None = None,
        state: StateFile | None = None,
    ) -> None:
        super().__init__(bus, settings, host_id, group=group or applier_group(host_id))
        self.metrics = metrics or Metrics(settings.max_sensor_series_per_host)
        self.enactors = list(enactors)
        self.clock = clock
        self.honour_jitter = honour_jitter
        self.results: OrderedDict[str, ApplyResult] = OrderedDict()
        self.last_applied_time: dict[str, float] = {}
        self.on_result: Callable[[ApplyResult], None] | None = None
        self.pool = pool
        self.event_clock = event_clock  # replays: judge a decision at its own time
        self._ticks: dict[str, list[float]] = {}
        self._tick_since: dict[str, float] = {}  # when each symbol's buffer got its first tick
        self._next_sweep: float | None = None  # the one flush timer, for every symbol
        self._profit = 0.5  # the value tag for new pool blocks: the last decision's profit
        # None only with --insecure-unsigned (or a test): then signatures are not checked.
        self.verifier = verifier
        self.watermarks: dict[str, Watermark] = {}  # host -> newest decision applied
        self.state = state
        # Set when the state file was missing or corrupt: a host without a watermark then takes
        # only decisions made after this time (the start), never one that may be a replay.
        self.strict_since: float | None = None
        self._pending: dict[str, _Pending] = {}  # host -> the decision waiting out its jitter
        self._tasks: asyncio.TaskGroup | None = None

    def _enact(self, d: ScalingDecision, started: float) -> ApplyResult:
        outcomes = [e.enact(d) for e in self.enactors]
        failed = [o for o in outcomes if o.status == "failed"]
        pools = [o for o in outcomes if o.bytes_after is not None]
        return ApplyResult(
            event_time=self.clock(),
            host_id=d.host_id,
            decision_id=d.decision_id,
            decision_event_time=d.event_time,
            status="failed" if failed else "applied",
            reason="; ".join(f"{o.actuator}: {o.detail}" for o in failed),
            sequence_epoch=d.sequence_epoch,
            sequence=d.sequence,
            bytes_before=sum(o.bytes_before or 0 for o in pools),
            bytes_after=sum(o.bytes_after or 0 for o in pools),
            error_bound=max((o.error_bound or 0.0 for o in pools), default=0.0),
            duration_seconds=max(0.0, time.perf_counter() - started),
            engine_config=engine_config(d),
            actuators=outcomes,
        )

    async def _reject(self, d: ScalingDecision, code: str, reason: str) -> None:
        """Acknowledge as rejected (no engine config: nothing of it may be adopted), count, and
        hand the record to the DLQ. Not remembered by id, so a forged copy of a future id
        cannot pre-empt the genuine decision."""
        result = ApplyResult(event_time=self.clock(), host_id=d.host_id, decision_id=d.decision_id,
                             decision_event_time=d.event_time, status="rejected",
                             reason=f"{code}: {reason}")  # fmt: skip
        self.stats["rejected"] += 1
        self.metrics.observe_rejection(code, result)
        log.warning("rejected decision %.80r for host %.80r: %s", d.decision_id, d.host_id,
                    result.reason)  # fmt: skip
        await self._publish(result)
        raise Rejected(result.reason)

    async def on_decision(self, d: ScalingDecision) -> None:
        now = d.event_time if self.event_clock else self.clock()
        fault: tuple[str, str] | None = None
        if self.verifier is not None:
            fault = verify(d, self.verifier)
        if fault is None:
            # A known id is a redelivery, acknowledged again below with its first result and
            # never re-enacted: only the window applies to it, not the sequence.
            known_id = d.decision_id in self.results
            last = None if known_id else self.watermarks.get(d.host_id)
            fault = freshness_fault(d, last, now, self.settings.applier)
            if (fault is None and last is None and not known_id and self.strict_since is not None
                    and d.event_time < self.strict_since):  # fmt: skip
                fault = ("replayed_sequence", "decided before this applier started, and its "
                         "watermark state was missing or corrupt")  # fmt: skip
        if fault is not None:
            await self._reject(d, *fault)
        self.metrics.observe_decision(d)
        self._profit = d.inputs.profit_potential
        known = self.results.get(d.decision_id)
        if known is not None:  # redelivery: acknowledge again, enact nothing
            self.stats["redelivered"] += 1
            await self._publish(known)
            return
        reason = skip_reason(d, self.last_applied_time.get(d.host_id), now, self.settings.applier,
                             own_host=self.host_id)  # fmt: skip
        if reason is not None:  # a waiting decision stays: this one is not to be enacted
            await self._answer(d, ApplyResult(
                event_time=self.clock(), host_id=d.host_id, decision_id=d.decision_id,
                decision_event_time=d.event_time, status="skipped", reason=reason,
                engine_config=engine_config(d),
            ))  # fmt: skip
            return
        # A decision superseding one that waits keeps that one's deadline: a host whose market
        # moves faster than its jitter still gets a decision enacted at least that often.
        deadline = await self._supersede(d)
        wait = 0.0
        if self.honour_jitter and not self.event_clock and d.apply_after_seconds > 0:
            # Per-host jitter: hosts of a fleet do not all resize at one instant. Waited out in
            # a task of its own, so other records and a stop are served meanwhile.
            wait = apply_delay(d, self.clock(), self.settings.applier)  # capped: 30 s default
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
        if wait <= 0:
            await self._apply(d)
            return
        if self._tasks is None:  # driven directly, not by run() (tests, benches): wait here
            await self._jitter(wait)
            await self._apply(d)
            return
        record = CURRENT_RECORD.get()
        task = self._tasks.create_task(self._apply_after(d, wait))
        self._pending[d.host_id] = _Pending(d, task, record, time.monotonic() + wait)

    async def _supersede(self, newer: ScalingDecision) -> float | None:
        """A decision for a host whose previous one still waits out its jitter: that one is
        answered skipped and never enacted (it would undo the newer). Returns its deadline."""
        pending = self._pending.pop(newer.host_id, None)
        if pending is None:
            return None
        pending.task.cancel()
        self.stats["superseded"] += 1
        d = pending.decision
        await self._answer(d, ApplyResult(
            event_time=self.clock(), host_id=d.host_id, decision_id=d.decision_id,
            decision_event_time=d.event_time, status="skipped",
            reason=f"superseded by {newer.decision_id[:200]} before its apply_after",
            engine_config=engine_config(d),
        ))  # fmt: skip
        return pending.deadline

    async def _apply_after(self, d: ScalingDecision, wait: float) -> None:
        """Enact after ``wait`` seconds, or at once when the service stops (the spread is a
        courtesy to the fleet; a stop must not leave a decision unanswered)."""
        await self._jitter(wait)
        pending = self._pending.get(d.host_id)
        if pending is None or pending.decision is not d:
            return  # superseded meanwhile
        try:
            await self._apply(d)
        except BusError as exc:  # stopping with the broker away: it stays uncommitted
            log.warning("result of %.80r not published (%s); it is redelivered", d.decision_id,
                        exc)  # fmt: skip
            return
        del self._pending[d.host_id]

    async def _jitter(self, wait: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), wait)
        except TimeoutError:
            pass

    async def _apply(self, d: ScalingDecision) -> None:
        started = time.perf_counter()
        result = await asyncio.to_thread(self._enact, d, started)
        self.last_applied_time[d.host_id] = d.event_time
        self.watermarks[d.host_id] = watermark(d)
        if self.state is not None:  # recorded before acknowledged; an OSError acks nothing
            await asyncio.to_thread(self.state.write, dict(self.watermarks))
        await self._answer(d, result)

    async def _answer(self, d: ScalingDecision, result: ApplyResult) -> None:
        self.results[d.decision_id] = result
        self._forget_results(d.event_time if self.event_clock else self.clock())
        self.stats[result.status] += 1
        self.metrics.observe_apply(result)
        if self.pool is not None:
            self.metrics.observe_pool(self.pool)
        await self._publish(result)

    def _forget_results(self, now: float) -> None:
        """Bound the answers kept for redeliveries. By count, and by age: a redelivered
        decision older than the event-time window is refused as stale before its answer is
        looked up, so an answer older than the window serves nothing (without this, the
        cache filled to SEEN_IDS and the resident size crept up for hours)."""
        horizon = now - self.settings.applier.max_decision_age_seconds - 1.0
        while self.results and (
            len(self.results) > SEEN_IDS
            or next(iter(self.results.values())).decision_event_time < horizon
        ):
            self.results.popitem(last=False)

    def held(self) -> Mapping[tuple[str, int], int]:
        """The records of decisions still waiting out their jitter: not committed, so an
        applier killed meanwhile has them redelivered (and its answered ones are read back)."""
        out: dict[tuple[str, int], int] = {}
        for p in self._pending.values():
            if p.record is not None:
                key = (p.record.topic, p.record.partition)
                out[key] = min(out.get(key, p.record.offset), p.record.offset)
        return out

    def load_state(self) -> None:
        """Take the watermarks of the state file, or warn and start strict."""
        if self.state is None:
            return
        loaded = self.state.load()
        for host, mark in loaded.marks.items():
            self.watermarks[host] = newer(self.watermarks.get(host), mark)
        if loaded.problem is not None:
            self.strict_since = self.clock()
            log.warning("%s; until a decision is applied, each host accepts only decisions made "
                        "after this start", loaded.problem)  # fmt: skip
        else:
            log.info("watermarks of %d host(s) read from %s", len(loaded.marks), self.state.path)

    async def run(self, stop: asyncio.Event) -> None:
        self.load_state()
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                await super().run(stop)  # a stop wakes every waiting decision: enacted now
        finally:
            self._tasks = None

    async def _publish(self, result: ApplyResult) -> None:
        await publish_retrying(
            self.bus,
            self.settings.topics.applied,
            result.host_id,
            encode(result),
            self._stop,
            "apply result",
        )
        if self.on_result is not None:
            self.on_result(result)

    async def on_tick(self, tick: PriceTick) -> None:
        """The engine's prices, kept in the pool at the decided precision.

        A symbol's ticks are written as one block when TICK_BLOCK have arrived. Slower symbols
        share one timer: every TICK_FLUSH_SECONDS the buffers holding at least TICK_MIN_BLOCK
        ticks, or waiting TICK_MAX_WAIT_SECONDS, are written; 1 000 slow symbols do not make
        1 000 tiny blocks every few seconds.
        """
        if self.pool is None:
            return
        buf = self._ticks.setdefault(tick.symbol, [])
        now = self.clock()  # wall time, not event time: a replay of daily bars is not "slow"
        if not buf:
            self._tick_since[tick.symbol] = now
        buf.append(tick.price)
        if len(buf) >= TICK_BLOCK:
            self._flush(tick.symbol, tick.event_time)
            self.metrics.observe_pool(self.pool)
        if self._next_sweep is None:
            self._next_sweep = now + TICK_FLUSH_SECONDS
        elif now >= self._next_sweep:
            self._next_sweep = now + TICK_FLUSH_SECONDS
            due = [sym for sym, b in self._ticks.items() if len(b) >= TICK_MIN_BLOCK
                   or (b and now - self._tick_since[sym] >= TICK_MAX_WAIT_SECONDS)]  # fmt: skip
            for sym in due:
                self._flush(sym, tick.event_time)
            if due:
                self.metrics.observe_pool(self.pool)

    def _flush(self, symbol: str, event_time: float) -> None:
        assert self.pool is not None
        buf = self._ticks.pop(symbol)
        self._tick_since.pop(symbol, None)
        if not self.pool.write(f"prices/{symbol}", buf, value=self._profit, now=event_time):
            self.stats["pool_rejected_writes"] += 1

    async def on_sensors(self, s: SensorReading) -> None:
        if s.host_id == self.host_id:  # other hosts' appliers export theirs: bounded series
            self.metrics.observe_sensors(s)

    async def on_hardware(self, snap: HardwareSnapshot) -> None:
        if snap.host_id == self.host_id:
            self.metrics.observe_hardware(snap)

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "decisions": self.on_decision,
            "sensors": self.on_sensors,
            "hardware": self.on_hardware,
            "ticks": self.on_tick,
        }

    async def on_assigned(self, partitions: set[tuple[str, int]]) -> None:
        """Before the first decision of a (re)start: what this host's applier already answered,
        read back from qas.applied, so a redelivered decision (its record was held uncommitted,
        or the commit was lost) is acknowledged again and never enacted twice."""
        t = self.settings.topics
        if not any(topic == t.decisions for topic, _ in partitions):
            return  # decisions arrive in process (qas run): nothing is redelivered
        try:
            records = await self.bus.read_back([t.applied], READ_BACK_SECONDS, APPLIED_TAIL)
        except BusError as exc:
            self.stats["rebuild_failed"] += 1
            log.warning("reading back earlier apply results failed: %s", exc)
            return
        known = 0
        for r in records:
            try:
                result = decode(r.value, ApplyResult)
            except Exception:  # not ours to judge here; counted
                self.stats["rebuild_skipped"] += 1
                continue
            if result.host_id != self.host_id or result.status == "rejected":
                continue  # a rejection is never remembered by id (see _reject)
            self.results[result.decision_id] = result
            known += 1
            if result.status == "applied":
                last = self.last_applied_time.get(result.host_id, 0.0)
                self.last_applied_time[result.host_id] = max(last, result.decision_event_time)
                if result.sequence > 0:  # the second source of the watermark, beside the file
                    mark = Watermark(result.sequence_epoch, result.sequence)
                    self.watermarks[result.host_id] = newer(
                        self.watermarks.get(result.host_id), mark)  # fmt: skip
        self._forget_results(self.clock())
        log.info("read back %d earlier apply result(s) of host %.80r", known, self.host_id)

    async def on_start(self) -> None:
        self.metrics.kafka_connected.set_function(lambda: 1.0 if self.bus.connected else 0.0)
        self.metrics.watch_dead_letters("applier", self.stats)
