"""Decider service: consumes every input topic, keeps per-host state, publishes decisions.

Every decision is stamped with this decider's epoch and, given a key ring, signed with its
first key before it is published (shared/signing.py).
"""

from __future__ import annotations

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
from shared.config import Settings
from shared.decision import decide
from shared.hoststate import HostState
from shared.market import StreamingEstimator
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
    ) -> None:
        super().__init__(bus, settings, host_id, group=group)
        self.clock = clock
        # Least recently seen first; capped by Settings.max_tracked_hosts.
        self.hosts: OrderedDict[str, HostState] = OrderedDict()
        self.top_bits = platform_top_bits()
        self.on_decision: Callable[[ScalingDecision], None] | None = None
        # Replays decide at the time of the input being replayed, not at the wall clock.
        self.event_clock = event_clock
        self._event_time = 0.0
        # (host, symbol) -> estimator, least recently seen first; capped by configuration.
        self._estimators: OrderedDict[tuple[str, str], StreamingEstimator] = OrderedDict()
        self.signer = signer  # None only with --insecure-unsigned (or a test)
        # Sequences restart with this process: the epoch orders them across restarts.
        self.epoch = int(time.time() * 1000)
        self.metrics = metrics or DeciderMetrics()

    async def on_start(self) -> None:
        """Before the first record: the hardware and stabiliser state the bus still holds."""
        self.metrics.kafka_connected.set_function(lambda: 1.0 if self.bus.connected else 0.0)
        self.metrics.watch_dead_letters("decider", self.stats)
        rebuilt = await read_back_state(self.bus, self.settings, self.stats)
        for host, snap in rebuilt.hardware.items():
            self._host(host).hardware = snap  # known, not a change: no pending_change
        for host, prior in rebuilt.priors.items():
            self._host(host).prior = prior
            self._host(host).entropy, self._host(host).profit = rebuilt.market[host]
        for host, reading in rebuilt.sensors.items():
            self._host(host).sensors = reading

    def _host(self, host_id: str) -> HostState:
        state = self.hosts.get(host_id)
        if state is None:
            state = self.hosts[host_id] = HostState()
            while len(self.hosts) > self.settings.max_tracked_hosts:
                self.hosts.popitem(last=False)
                self.stats["hosts_evicted"] += 1
        else:
            self.hosts.move_to_end(host_id)
        return state

    async def _evaluate(self, host_id: str) -> None:
        state = self._host(host_id)
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
            return
        state.pending_change = False
        decision = msgspec.structs.replace(decision, sequence_epoch=self.epoch)
        if self.signer is not None:
            decision, data = sign_encoded(decision, self.signer.signer)
        else:
            data = encode(decision)
        await publish_retrying(
            self.bus, self.settings.topics.decisions, host_id, data, self._stop, "decision"
        )
        self.stats["decisions"] += 1
        self.metrics.observe_decision(decision)
        if self.on_decision is not None:
            self.on_decision(decision)

    async def on_hardware(self, snap: HardwareSnapshot) -> None:
        self.metrics.observe_input(snap.host_id, "hardware")
        self._host(snap.host_id).observe_hardware(snap)
        if not self.event_clock:  # replays: market events set the time and drive decisions
            await self._evaluate(snap.host_id)

    async def on_sensors(self, reading: SensorReading) -> None:
        self.metrics.observe_input(reading.host_id, "sensors")
        state = self._host(reading.host_id)
        if state.sensors is not None and reading.event_time < state.sensors.event_time:
            # Older than what the rebuild read back (a restart's redelivered backlog): deciding
            # on it would decide on stale inputs.
            self.stats["older_inputs_ignored"] += 1
            return
        state.sensors = reading
        if not self.event_clock:
            await self._evaluate(reading.host_id)

    async def on_entropy(self, msg: MarketEntropy) -> None:
        self.metrics.observe_input(msg.host_id, "entropy")
        self._event_time = msg.event_time
        self._host(msg.host_id).entropy = msg
        await self._evaluate(msg.host_id)

    async def on_profit(self, msg: ProfitPotential) -> None:
        self.metrics.observe_input(msg.host_id, "profit")
        self._event_time = msg.event_time
        self._host(msg.host_id).profit = msg
        await self._evaluate(msg.host_id)

    def _estimator(self, host_id: str, symbol: str) -> StreamingEstimator:
        key = (host_id, symbol)
        est = self._estimators.get(key)
        if est is None:
            est = self._estimators[key] = StreamingEstimator()
            while len(self._estimators) > self.settings.max_tracked_symbols:
                self._estimators.popitem(last=False)
                self.stats["symbols_evicted"] += 1
        else:
            self._estimators.move_to_end(key)
        return est

    async def on_tick(self, tick: PriceTick) -> None:
        """Prices instead of entropy: derive entropy (and the profit heuristic) from them,
        unless the engine's own values are fresh."""
        self._event_time = tick.event_time
        self.metrics.observe_input(tick.host_id, "ticks")
        est = self._estimator(tick.host_id, tick.symbol)
        derived = est.update(tick.price, tick.event_time)
        if derived is None:
            return
        state = self._host(tick.host_id)
        limit = self.settings.decision.staleness_seconds
        t = tick.event_time
        if (
            state.entropy is None
            or state.entropy.source == "ticks"
            or t - state.entropy.event_time > limit
        ):
            state.entropy = MarketEntropy(event_time=t, host_id=tick.host_id, value=derived.entropy,
                                          source="ticks", confidence=derived.confidence,
                                          note=derived.reason)  # fmt: skip
        if (
            state.profit is None
            or state.profit.source == "heuristic:trend"
            or t - state.profit.event_time > limit
        ):
            state.profit = ProfitPotential(event_time=t, host_id=tick.host_id, value=derived[1],
                                           source="heuristic:trend")  # fmt: skip
        await self._evaluate(tick.host_id)

    async def on_feedback(self, report: FeedbackReport) -> None:
        """Engine feedback (qas.feedback): the newest report per host, folded in as target
        tracking by the pure core (shared/feedback.py); it triggers a decision."""
        state = self._host(report.host_id)
        if state.feedback is not None and report.event_time <= state.feedback.event_time:
            self.stats["feedback_stale"] += 1
            return
        self._event_time = max(self._event_time, report.event_time)
        state.feedback = report
        await self._evaluate(report.host_id)

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "hardware": self.on_hardware,
            "sensors": self.on_sensors,
            "entropy": self.on_entropy,
            "profit": self.on_profit,
            "ticks": self.on_tick,
            "feedback": self.on_feedback,
        }
