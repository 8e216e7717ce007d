"""Decider service: consumes every input topic, keeps per-host state, publishes decisions.

State is kept only for hosts with a valid ``qas.hardware`` record (its fingerprint is the hash
of its inventory), named by the ``--hosts`` allowlist when one is given: host ids come from the
bus, and a writer inventing hosts must not cost memory or /metrics series. Inputs of other
hosts are counted per topic, the latest few held until their hardware arrives
(services/decider/unknown.py), the rest dropped.

Every decision is stamped with this decider's epoch and, given a key ring, signed with its
first key before it is published (shared/signing.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

import msgspec

from services.base import ConsumingService, Handler
from services.bus.base import Bus
from services.bus.consume import publish_retrying
from services.decider.metrics import DeciderMetrics
from services.decider.rebuild import read_back_state
from services.decider.unknown import UnknownHosts
from shared.config import Settings
from shared.decision import decide
from shared.fingerprint import fingerprint
from shared.hostfilter import HostFilter
from shared.hoststate import HostState, SymbolMarket
from shared.market import StreamingEstimator
from shared.market_aggregate import Aggregate, SymbolValue, aggregate
from shared.messages import (
    FeedbackReport,
    HardwareSnapshot,
    MarketEntropy,
    PriceTick,
    ProfitPotential,
    ScalingDecision,
    SensorReading,
    encode,
)
from shared.precision import platform_top_bits
from shared.signing import KeyRing, sign_encoded

log = logging.getLogger("qas.decider")


class DeciderService(ConsumingService):
    service = "decider"

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        host_id: str,
        *,
        clock: Callable[[], float] = time.time,
        group: str = "qas-decider",
        event_clock: bool = False,
        signer: KeyRing | None = None,
        metrics: DeciderMetrics | None = None,
        hosts: HostFilter | None = None,
    ) -> None:
        super().__init__(bus, settings, host_id, group=group)
        self.clock = clock
        # Least recently seen first; capped by Settings.max_tracked_hosts. Only hosts with a
        # valid hardware record that ``allowed`` names (None: every host).
        self.hosts: OrderedDict[str, HostState] = OrderedDict()
        self.allowed = None if hosts is None or hosts.everything else hosts
        self.unknown = UnknownHosts(clock)
        self.top_bits = platform_top_bits()
        # Called with each decision as it is made, before it is published (qas run's
        # in-process applier), and with each once it is on the bus (the --json output: a
        # decision printed is one a consumer can read, even if this process is killed next).
        self.on_decision: Callable[[ScalingDecision], None] | None = None
        self.on_published: Callable[[ScalingDecision], None] | None = None
        # Replays decide at the time of the input being replayed, not at the wall clock.
        self.event_clock = event_clock
        self._event_time = 0.0
        # (host, symbol) -> (last seen, estimator), least recently seen first; capped and aged
        # out by configuration.
        self._estimators: OrderedDict[tuple[str, str], tuple[float, StreamingEstimator]] = (
            OrderedDict()
        )
        self.signer = signer  # None only with --insecure-unsigned (or a test)
        # Sequences restart with this process: the epoch orders them across restarts.
        self.epoch = int(time.time() * 1000)
        self.metrics = metrics or DeciderMetrics()
        self._dirty: dict[str, None] = {}  # hosts to decide at the end of this batch, in order

    async def on_start(self) -> None:
        self.metrics.kafka_connected.set_function(lambda: 1.0 if self.bus.connected else 0.0)
        self.metrics.tracked_hosts.set_function(lambda: float(len(self.hosts)))
        self.metrics.watch_dead_letters("decider", self.stats)
        t = self.settings.topics
        for topic in (t.sensors, t.entropy, t.profit, t.ticks, t.feedback):
            self.metrics.unknown_events.labels(topic, "no_hardware")  # at 0 from the start

    async def on_assigned(self, partitions: set[tuple[str, int]]) -> None:
        """Before the first record of newly assigned partitions (a start, a restart, a takeover
        from another decider): the hardware and stabiliser state the bus holds for their hosts.
        What the bus holds is at least as new as what this process may remember of them."""
        numbers = {p for _, p in partitions}
        rebuilt = await read_back_state(self.bus, self.settings, self.stats, numbers)
        for host, snap in rebuilt.hardware.items():
            if self._admits(snap, self.settings.topics.hardware):
                self._host(host).hardware = snap  # known, not a change: no pending_change
        for host, prior in rebuilt.priors.items():
            # A host a decider has decided for had a valid hardware record then: a takeover
            # resumes it even when the read-back of the hardware topic missed its record.
            if self.allowed is not None and not self.allowed.allows(host):
                continue
            resumed = self._host(host)
            resumed.prior = prior
            resumed.entropy, resumed.profit = rebuilt.market[host]
            resumed.epoch = max(resumed.epoch, rebuilt.epochs[host])
        for host, reading in rebuilt.sensors.items():
            if (state := self._tracked(host)) is None:
                continue
            if state.sensors is None or reading.event_time >= state.sensors.event_time:
                state.sensors = reading

    def _admits(self, snap: HardwareSnapshot, topic: str) -> bool:
        """A hardware record that makes its host tracked: on the allowlist, and its fingerprint
        the hash of its inventory (a record that fails this is counted, not tracked)."""
        if self.allowed is not None and not self.allowed.allows(snap.host_id):
            self._refuse(topic)
            return False
        if snap.fingerprint != fingerprint(snap.inventory):
            self.stats["hardware_invalid"] += 1
            self.metrics.unknown_events.labels(topic, "invalid_hardware").inc()
            return False
        return True

    def _refuse(self, topic: str) -> None:
        self.stats["not_allowed_events"] += 1
        self.metrics.unknown_events.labels(topic, "not_allowed").inc()
        self.unknown.refused()

    def _tracked(self, host_id: str) -> HostState | None:
        """The state of a tracked host, now seen; None for any other host."""
        return self._host(host_id) if host_id in self.hosts else None

    def _input_of(self, host_id: str, role: str, msg: object) -> HostState | None:
        """The state of ``host_id`` if it is tracked; else ``msg`` is counted (and, but for
        ticks, the newest of its kind held for when the host's hardware arrives)."""
        if host_id in self.hosts:
            return self._host(host_id)
        topic = self.settings.topics.name(role)
        if self.allowed is not None and not self.allowed.allows(host_id):
            self._refuse(topic)
            return None
        self.stats["unknown_host_events"] += 1
        self.metrics.unknown_events.labels(topic, "no_hardware").inc()
        self.unknown.unknown(host_id, topic)
        if role != "ticks":  # one tick is no estimate: the host's next ones are
            self.unknown.hold(host_id, role, msg)
        return None

    def _host(self, host_id: str) -> HostState:
        now = self.clock()
        state = self.hosts.get(host_id)
        if state is None:
            state = self.hosts[host_id] = HostState()
            while len(self.hosts) > self.settings.max_tracked_hosts:
                self._forget(self.hosts.popitem(last=False)[0])
                self.stats["hosts_evicted"] += 1
                self.metrics.hosts_dropped.labels("cap").inc()
                self.unknown.evicted()
        else:
            self.hosts.move_to_end(host_id)
        state.seen_at = now
        self._expire(now)
        return state

    def _expire(self, now: float) -> None:
        """Drop hosts (and their tick estimators) unseen for longer than the configured age;
        least recently seen first, so this stops at the first host still in time."""
        limit = now - self.settings.host_state_max_age_seconds
        while self.hosts:
            host, oldest = next(iter(self.hosts.items()))
            if oldest.seen_at >= limit:
                break
            del self.hosts[host]
            self._forget(host)
            self.stats["hosts_expired"] += 1
            self.metrics.hosts_dropped.labels("expired").inc()
        while self._estimators:
            key, (seen, _) = next(iter(self._estimators.items()))
            if seen >= limit:
                break
            del self._estimators[key]
            self._drop_symbol(key)
            self.stats["symbols_expired"] += 1

    def _drop_symbol(self, key: tuple[str, str]) -> None:
        """A symbol's estimator is gone (evicted or aged out): so are its values in the host's
        aggregate, which stays bounded by the same cap."""
        state = self.hosts.get(key[0])
        if state is not None and state.symbols.pop(key[1], None) is not None:
            state.ranked_entropy.remove(key[1])
            state.ranked_profit.remove(key[1])
            state.symbols_changed = True

    def _forget(self, host_id: str) -> None:
        self.metrics.forget(host_id)

    async def _changed(self, host_id: str) -> None:
        """An input for ``host_id`` arrived. Live, the host is decided once at the end of the
        batch, from everything the batch brought (a restart's backlog is one decision from the
        newest inputs, not one per stale record); a replay decides at every market event."""
        if self.event_clock:
            await self._evaluate(host_id)
        else:
            self._dirty[host_id] = None

    async def on_handled(self) -> None:
        """Every record of the batch handled, before its commit: decide for the hosts it
        touched and publish those decisions together (a crash before they are out redelivers
        the batch)."""
        made: list[tuple[ScalingDecision, bytes]] = []
        while self._dirty:
            host_id = next(iter(self._dirty))
            del self._dirty[host_id]
            try:
                decision = self._decide(host_id)
            except Exception:  # one host's inputs must not stop the others' decisions
                self.stats["evaluations_failed"] += 1
                log.exception("decider: evaluating host %r failed", host_id[:253])
                continue
            if decision is not None:
                made.append(decision)
        await self._publish(made)

    async def _evaluate(self, host_id: str) -> None:
        decision = self._decide(host_id)
        if decision is not None:
            await self._publish([decision])

    def _decide(self, host_id: str) -> tuple[ScalingDecision, bytes] | None:
        """The host's decision now and its bytes (stamped, signed), or None when held (or
        when the host was dropped since its input arrived)."""
        state = self._tracked(host_id)
        if state is None:
            return None
        self._fold_symbols(host_id, state)
        now = self._event_time if self.event_clock else self.clock()
        decision, state.prior = decide(
            state.inputs(now, self.top_bits),
            state.prior,
            host_id=host_id,
            now=now,
            c=self.settings.decision,
        )
        if decision is None:
            self.stats["held"] += 1
            self.metrics.observe_held(host_id)
            return None
        state.pending_change = False
        state.epoch = max(self.epoch, state.epoch)
        decision = msgspec.structs.replace(decision, sequence_epoch=state.epoch)
        if self.signer is not None:
            return sign_encoded(decision, self.signer.signer)
        return decision, encode(decision)

    async def _publish(self, made: list[tuple[ScalingDecision, bytes]]) -> None:
        """Publish decisions (one per host) at once: the producer batches them, instead of a
        round trip each (a takeover's backlog is hundreds of hosts). Raises a BusError only when
        stopping with the broker away."""
        topic = self.settings.topics.decisions
        if self.on_decision is not None:
            # Handed on first (qas run's in-process applier), the publish not awaited: the
            # produce round trip is not in series with the apply. A stop with the broker away
            # can then leave a decision applied here and not on the bus; the batch is not
            # committed, so its inputs are decided again after a restart.
            for decision, _ in made:
                self.on_decision(decision)
        # A decision past the applier's age limit would be refused: retry it only that long,
        # so a broker refusing one partition cannot hold the loop (and every host) for longer.
        within = self.settings.applier.max_decision_age_seconds
        if len(made) == 1:
            ok = [await publish_retrying(self.bus, topic, made[0][0].host_id, made[0][1],
                                         self._stop, "decision", within=within)]  # fmt: skip
        elif made:
            try:
                async with asyncio.TaskGroup() as tg:
                    jobs = [
                        tg.create_task(publish_retrying(self.bus, topic, d.host_id, raw,
                                                        self._stop, "decision", within=within))
                        for d, raw in made
                    ]  # fmt: skip
            except BaseExceptionGroup as group:
                raise group.exceptions[0] from None
            ok = [job.result() for job in jobs]
        else:
            ok = []
        for (decision, _), published in zip(made, ok, strict=True):
            if not published:
                self._unpublished(decision)
        made = [m for m, published in zip(made, ok, strict=True) if published]
        for decision, _ in made:
            self.stats["decisions"] += 1
            self.metrics.observe_decision(decision)
            if self.on_published is not None:
                self.on_published(decision)

    def _unpublished(self, decision: ScalingDecision) -> None:
        """``decision`` never reached the bus: the stabiliser goes back to what was published
        (keeping the sequence, which may have reached the broker), so the change is decided
        again, and the host is decided at the end of the next batch."""
        self.stats["decisions_unpublished"] += 1
        state = self.hosts.get(decision.host_id)
        if state is None:
            return
        before = decision.prior
        state.prior = msgspec.structs.replace(
            state.prior,
            scaling_factor=before.scaling_factor,
            precision_bits=before.precision_bits,
            decided_at=before.decided_at,
        )
        if decision.inputs.hardware_changed:
            state.pending_change = True
        self._dirty[decision.host_id] = None

    async def on_hardware(self, snap: HardwareSnapshot) -> None:
        if not self._admits(snap, self.settings.topics.hardware):
            return
        self.metrics.observe_input(snap.host_id, "hardware")
        self._host(snap.host_id).observe_hardware(snap)
        handlers = self.handlers()
        for role, msg in self.unknown.release(snap.host_id):  # inputs that came before it
            await handlers[role](msg)
        if not self.event_clock:  # replays: market events set the time and drive decisions
            await self._changed(snap.host_id)

    async def on_sensors(self, reading: SensorReading) -> None:
        state = self._input_of(reading.host_id, "sensors", reading)
        if state is None:
            return
        self.metrics.observe_input(reading.host_id, "sensors")
        if state.sensors is not None and reading.event_time < state.sensors.event_time:
            # Older than what the rebuild read back (a restart's redelivered backlog): deciding
            # on it would decide on stale inputs.
            self.stats["older_inputs_ignored"] += 1
            return
        state.sensors = reading
        if not self.event_clock:
            await self._changed(reading.host_id)

    async def on_entropy(self, msg: MarketEntropy) -> None:
        state = self._input_of(msg.host_id, "entropy", msg)
        if state is None:
            return
        self.metrics.observe_input(msg.host_id, "entropy")
        self._event_time = msg.event_time
        if _older(msg, state.entropy):
            self.stats["older_inputs_ignored"] += 1
            return
        state.entropy = msg
        await self._changed(msg.host_id)

    async def on_profit(self, msg: ProfitPotential) -> None:
        state = self._input_of(msg.host_id, "profit", msg)
        if state is None:
            return
        self.metrics.observe_input(msg.host_id, "profit")
        self._event_time = msg.event_time
        if _older(msg, state.profit):
            self.stats["older_inputs_ignored"] += 1
            return
        state.profit = msg
        await self._changed(msg.host_id)

    def _estimator(self, host_id: str, symbol: str) -> StreamingEstimator:
        key = (host_id, symbol)
        held = self._estimators.get(key)
        est = StreamingEstimator() if held is None else held[1]
        self._estimators[key] = (self.clock(), est)
        if held is None:
            while len(self._estimators) > self.settings.max_tracked_symbols:
                self._drop_symbol(self._estimators.popitem(last=False)[0])
                self.stats["symbols_evicted"] += 1
        else:
            self._estimators.move_to_end(key)
        return est

    async def on_tick(self, tick: PriceTick) -> None:
        """Prices instead of entropy: derive entropy (and the profit heuristic) per symbol;
        the host's values are their aggregate, folded in once before the host is decided."""
        state = self._input_of(tick.host_id, "ticks", tick)
        if state is None:
            return
        self._event_time = tick.event_time
        self.metrics.observe_input(tick.host_id, "ticks")
        est = self._estimator(tick.host_id, tick.symbol)
        derived = est.update(tick.price, tick.event_time)
        if derived is None:
            return
        if state.symbols and tick.event_time < state.newest_tick:
            state.ticks_in_order = False
        state.newest_tick = max(state.newest_tick, tick.event_time)
        state.symbols.pop(tick.symbol, None)  # re-inserted last: ``symbols`` in update order
        state.ranked_entropy.set(tick.symbol, derived.entropy)
        state.ranked_profit.set(tick.symbol, derived[1])
        state.symbols[tick.symbol] = SymbolMarket(
            entropy=derived.entropy, profit=derived[1], confidence=derived.confidence,
            note=derived.reason, event_time=tick.event_time,
        )  # fmt: skip
        state.symbols_changed = True
        await self._changed(tick.host_id)

    def _fold_symbols(self, host_id: str, state: HostState) -> None:
        """The host's market entropy and profit from its symbols' latest values
        (shared/market_aggregate.py), unless the engine's own values are fresh. Done per
        decision, not per tick, and measured from the newest symbol's event time, so the
        arrival order of a batch's ticks does not matter."""
        if not state.symbols_changed or not state.symbols:
            return
        state.symbols_changed = False
        limit = self.settings.decision.staleness_seconds
        now = state.newest_tick
        oldest = next(iter(state.symbols.values())).event_time
        if state.ticks_in_order and now - oldest <= limit:
            # Every symbol fresh: the ranked values give the same aggregate without a sort.
            ent, pro = state.ranked_entropy.default(now), state.ranked_profit.default(now)
        else:
            ent, pro = self._aggregates(state, now, limit)
        if ent is None or pro is None:
            return  # every symbol stale: no market entropy, the held one ages into staleness
        if ent.fresh == 1 and ent.rule == "single":
            one = state.symbols[ent.top[0][0]]
            confidence, note = one.confidence, one.note
        else:
            # The leading symbols' confidence: O(1) a decision, and independent of order.
            leads = [state.symbols[symbol].confidence for symbol, _ in ent.top]
            confidence = sum(leads) / len(leads)
            note = f"market entropy {ent.value:.2f}: {ent.describe()}"
        t = ent.event_time
        if (
            state.entropy is None
            or state.entropy.source == "ticks"
            or t - state.entropy.event_time > limit
        ):
            state.entropy = MarketEntropy(event_time=t, host_id=host_id, value=ent.value,
                                          source="ticks", confidence=confidence,
                                          note=note)  # fmt: skip
        if (
            state.profit is None
            or state.profit.source == "heuristic:trend"
            or t - state.profit.event_time > limit
        ):
            state.profit = ProfitPotential(event_time=t, host_id=host_id, value=pro.value,
                                           source="heuristic:trend")  # fmt: skip

    @staticmethod
    def _aggregates(
        state: HostState, now: float, limit: float
    ) -> tuple[Aggregate | None, Aggregate | None]:
        """Some symbol may be stale, or ticks came out of order: aggregate the fresh ones."""
        ent = aggregate({s: SymbolValue(v.entropy, v.event_time) for s, v in state.symbols.items()},
                        now=now, staleness_seconds=limit)  # fmt: skip
        pro = aggregate({s: SymbolValue(v.profit, v.event_time) for s, v in state.symbols.items()},
                        now=now, staleness_seconds=limit)  # fmt: skip
        return ent, pro

    async def on_feedback(self, report: FeedbackReport) -> None:
        """Engine feedback (qas.feedback): the newest report per host, folded in as target
        tracking by the pure core (shared/feedback.py); it triggers a decision."""
        state = self._input_of(report.host_id, "feedback", report)
        if state is None:
            return
        if state.feedback is not None and report.event_time <= state.feedback.event_time:
            self.stats["feedback_stale"] += 1
            return
        self._event_time = max(self._event_time, report.event_time)
        state.feedback = report
        await self._changed(report.host_id)

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "hardware": self.on_hardware,
            "sensors": self.on_sensors,
            "entropy": self.on_entropy,
            "profit": self.on_profit,
            "ticks": self.on_tick,
            "feedback": self.on_feedback,
        }


def _older(
    msg: MarketEntropy | ProfitPotential, held: MarketEntropy | ProfitPotential | None
) -> bool:
    """A market input older than the one held from the same source, or than what a rebuild
    restored (a restart's or a takeover's redelivered backlog): deciding on it would go back."""
    return (
        held is not None
        and msg.event_time < held.event_time
        and held.source in (msg.source, "rebuilt")
    )
