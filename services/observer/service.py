"""Observer service: qas.hardware at start and on change, qas.sensors every interval."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from services.bus.base import Bus
from services.bus.consume import publish_retrying
from services.observer.metrics import ObserverMetrics
from services.observer.probe import HardwareProbe
from shared.config import Settings
from shared.messages import HardwareSnapshot, encode

log = logging.getLogger("qas.observer")


class ObserverService:
    def __init__(
        self,
        bus: Bus,
        probe: HardwareProbe,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: ObserverMetrics | None = None,
    ) -> None:
        self.bus = bus
        self.probe = probe
        self.settings = settings
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self.on_snapshot: Callable[[HardwareSnapshot], None] | None = None
        self.metrics = metrics or ObserverMetrics()
        self.metrics.kafka_connected.set_function(lambda: 1.0 if self.bus.connected else 0.0)

    async def _publish_snapshot(self, snap: HardwareSnapshot, stop: asyncio.Event) -> None:
        topic = self.settings.topics.hardware
        await publish_retrying(self.bus, topic, snap.host_id, encode(snap), stop, "hardware")
        self.stats["hardware_published"] += 1
        self.metrics.observe_snapshot(snap)
        if snap.changed:
            self.stats["hardware_changes"] += 1
            log.warning(
                "hardware changed (quantum collapse): %s -> %s",
                (snap.previous_fingerprint or "")[:12],
                snap.fingerprint[:12],
            )
        if self.on_snapshot is not None:
            self.on_snapshot(snap)

    async def run(self, stop: asyncio.Event) -> None:
        snap = await asyncio.to_thread(self.probe.snapshot)
        for m in snap.missing:
            log.info("not observed: %s (%s)", m.part, m.reason)
        await self._publish_snapshot(snap, stop)
        next_inventory = self.clock() + self.settings.inventory_interval_seconds
        interval = self.settings.sensor_interval_seconds
        while not stop.is_set():
            started = self.clock()
            try:
                reading = await asyncio.to_thread(self.probe.sample)
                await publish_retrying(
                    self.bus,
                    self.settings.topics.sensors,
                    reading.host_id,
                    encode(reading),
                    stop,
                    "sensors",
                )
                self.stats["sensors_published"] += 1
                self.metrics.observe_reading(reading)
                if started >= next_inventory:
                    next_inventory = started + self.settings.inventory_interval_seconds
                    snap = await asyncio.to_thread(self.probe.snapshot)
                    if snap.changed:
                        await self._publish_snapshot(snap, stop)
            except asyncio.CancelledError:
                raise
            except Exception:  # a sampling bug must not stop the observer
                if stop.is_set():
                    break
                self.stats["sample_errors"] += 1
                self.metrics.sample_errors.inc()
                log.exception("sampling failed; continuing")
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (self.clock() - started)))
            except TimeoutError:
                pass
