"""One consuming-service base: a subscriber object that owns its loop (FastStream's shape).

A service names its handlers by topic role (``shared.topics``); the base builds the routes from
the topic table, runs the one consume loop, keeps the stats and lets callers await progress
(``drained``) instead of polling counters.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from services.bus.base import Bus
from services.bus.consume import Route, Subscriber, serve
from shared.config import Settings
from shared.topics import BY_ROLE

Handler = Callable[[Any], Awaitable[None]]


class ConsumingService:
    service: ClassVar[str] = "service"

    def __init__(self, bus: Bus, settings: Settings, host_id: str, *, group: str) -> None:
        self.bus = bus
        self.settings = settings
        self.host_id = host_id
        self.group = group
        self.stats: Counter[str] = Counter()
        self.lag: dict[tuple[str, int], int] = {}  # (topic, partition) -> records behind
        self._stop = asyncio.Event()
        self._progress = asyncio.Condition()
        self._stopped = False

    def handlers(self) -> Mapping[str, Handler]:
        """Topic role -> handler of its decoded message."""
        raise NotImplementedError

    def routes(self) -> dict[str, Route]:
        t = self.settings.topics
        return {
            t.name(role): Route(BY_ROLE[role].message, h) for role, h in self.handlers().items()
        }

    @property
    def subscriber(self) -> Subscriber:
        return Subscriber(
            group=self.group,
            service=self.service,
            host_id=self.host_id,
            dlq_topic=self.settings.topics.dlq,
        )

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        try:
            await self.on_start()
            await serve(
                self.bus, self.routes(), self.subscriber, stop=stop, stats=self.stats,
                on_batch=self._batch_done, lag=self.lag, on_assigned=self.on_assigned,
                on_handled=self.on_handled, held=self.held,
            )  # fmt: skip
        finally:
            self._stopped = True
            await self._batch_done()  # wake drained() waiters: nothing more will come

    async def on_start(self) -> None:
        """Hook before the group is joined (metrics wiring)."""

    async def on_assigned(self, partitions: set[tuple[str, int]]) -> None:
        """Hook before the first record of newly assigned (topic, partition)s is handled: a
        start, a restart or a takeover in a rebalance (state rebuild). Must not raise."""

    async def on_handled(self) -> None:
        """Hook after every record of a batch was handled, before the batch is committed."""

    def held(self) -> Mapping[tuple[str, int], int]:
        """Offsets per (topic, partition) still being worked on: not committed yet."""
        return {}

    async def _batch_done(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def drained(self, topic: str, count: int) -> None:
        """Return once ``count`` records of ``topic`` were handled (consumed or dead-lettered),
        or once the service has stopped."""
        await self.until(lambda: self.stats[f"handled:{topic}"] >= count)

    async def until(self, done: Callable[[], bool]) -> None:
        """Return once ``done()`` holds at the end of a batch, or once the service has stopped."""
        async with self._progress:
            await self._progress.wait_for(lambda: done() or self._stopped)
