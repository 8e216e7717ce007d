"""The engine client: follow decisions, hold the engine's arrays, size and type its compute,
report feedback. One object for an asyncio engine, one thread-backed wrapper for a plain loop.

asyncio::

    async with connect(latency_objective_ms=25) as qas:      # embedded bus, QAS beside it
        async for adopted in qas.decisions():                  # or qas.on_adopt = callback
            ...

plain loop::

    with BackgroundClient(latency_objective_ms=25) as qas:
        for batch in work:
            qas.sizer.size, qas.precision.dtype                # what to compute with
            qas.record_batch(seconds, items)                   # feedback goes out each interval

On the embedded bus (no ``bootstrap_servers``) ``connect`` also runs QAS's observer and decider
in the same process; with Kafka, QAS runs as its own services (``qas run --bootstrap-servers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from core.engine.compute import BatchSizer, PrecisionContext
from core.engine.feedback import FeedbackReporter
from core.engine.follow import Adopted, DecisionFollower, Verify, signed_by
from core.engine.store import EngineStore
from services.bus.base import Bus
from services.bus.kafka import KafkaBus
from services.bus.memory import MemoryBus
from services.bus.security import BrokerSecurity
from services.decider.service import DeciderService
from services.observer.nvml import NvmlReader, load_pynvml
from services.observer.probe import HardwareProbe
from services.observer.service import ObserverService
from shared.config import Settings
from shared.messages import FeedbackReport, MarketEntropy, PriceTick, ProfitPotential, encode
from shared.signing import KeyRing

log = logging.getLogger("qas.engine")


class EngineClient:
    """The engine's side of QAS on one bus (the bus is started and stopped by its owner)."""

    def __init__(
        self,
        bus: Bus,
        settings: Settings | None = None,
        host_id: str | None = None,
        *,
        latency_objective_ms: float = 25.0,
        memory_limit_bytes: int | None = None,
        store_budget_bytes: int = 64 << 20,
        max_store_bytes: int | None = None,
        feedback_interval_seconds: float = 1.0,
        verify: Verify | None = None,
        clock: Callable[[], float] = time.time,
        stop: asyncio.Event | None = None,
        sizer: BatchSizer | None = None,
    ) -> None:
        self.bus = bus
        self.settings = settings or Settings()
        self.host_id = host_id or self.settings.host_id or socket.gethostname()
        self.stop = stop or asyncio.Event()
        self.follower = DecisionFollower(
            bus, self.settings, self.host_id, verify=verify, clock=clock, stop=self.stop
        )
        self.store = EngineStore(store_budget_bytes, max_budget_bytes=max_store_bytes, clock=clock)
        self.sizer = sizer or BatchSizer()
        self.precision = PrecisionContext()
        self.reporter = FeedbackReporter(
            self.host_id, latency_objective_ms, memory_limit_bytes, clock=clock
        )
        self.feedback_interval_seconds = feedback_interval_seconds
        self.on_adopt: Callable[[Adopted], None] | None = None
        self.adopted: list[Adopted] = []
        self.reports: list[FeedbackReport] = []

    @property
    def current(self) -> Adopted | None:
        return self.follower.current

    def _adopted(self, a: Adopted) -> None:
        d = a.decision
        self.store.enact(d)
        self.sizer.adopt(d)
        self.precision.adopt(d)
        self.reporter.adopt(d, self.sizer.size)
        self.adopted.append(a)
        log.info(
            "adopted %s: batch %d, %s, factor %.2f, %.0f ms after the decision",
            d.decision_id, self.sizer.size, d.precision_tier, d.scaling_factor,
            a.latency_seconds * 1000,
        )  # fmt: skip
        if self.on_adopt is not None:
            self.on_adopt(a)

    async def decisions(self) -> AsyncIterator[Adopted]:
        """Each adopted decision, already enacted on the store, sizer and precision context."""
        async for a in self.follower:
            self._adopted(a)
            yield a

    async def follow(self) -> None:
        """Adopt decisions until stopped (``on_adopt`` is called for each): the callback form."""
        async for _ in self.decisions():
            pass

    # --- measurements -----------------------------------------------------------------------

    def record_batch(self, seconds: float, items: int) -> None:
        self.reporter.record_batch(seconds, items)

    async def send_feedback(self) -> FeedbackReport:
        """Publish the interval's report on ``qas.feedback`` and start the next interval."""
        report = self.reporter.report(
            store_bytes=self.store.nbytes(), store_error_bound=self.store.error_bound()
        )
        await self.bus.publish(self.settings.topics.feedback, self.host_id, encode(report))
        self.reports.append(report)
        return report

    async def feedback_loop(self) -> None:
        """A report every interval in which the engine computed at least one batch."""
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.feedback_interval_seconds)
            if self.reporter.batches:
                await self.send_feedback()

    async def run(self) -> None:
        """Follow decisions and report feedback until ``stop`` is set."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.follow())
            tg.create_task(self.feedback_loop())

    # --- market inputs (optional: QAS derives entropy from ticks) ----------------------------

    async def publish_tick(
        self, symbol: str, price: float, event_time: float | None = None
    ) -> None:
        t = time.time() if event_time is None else event_time
        tick = PriceTick(event_time=t, host_id=self.host_id, symbol=symbol, price=price)
        await self.bus.publish(self.settings.topics.ticks, self.host_id, encode(tick))

    async def publish_inputs(
        self, *, entropy: float | None = None, profit: float | None = None
    ) -> None:
        t = time.time()
        if entropy is not None:
            m = MarketEntropy(event_time=t, host_id=self.host_id, value=entropy)
            await self.bus.publish(self.settings.topics.entropy, self.host_id, encode(m))
        if profit is not None:
            p = ProfitPotential(event_time=t, host_id=self.host_id, value=profit)
            await self.bus.publish(self.settings.topics.profit, self.host_id, encode(p))


def make_bus(
    settings: Settings,
    bootstrap_servers: str | None,
    connect_timeout: float = 30.0,
    security: BrokerSecurity | None = None,
) -> Bus:
    if not bootstrap_servers:
        return MemoryBus()
    t = settings.topics
    return KafkaBus(
        bootstrap_servers,
        connect_timeout=connect_timeout,
        topics=t.all(),
        compacted_topics=t.compacted(),
        security=security,
    )


@asynccontextmanager
async def connect(
    *,
    bootstrap_servers: str | None = None,
    settings: Settings | None = None,
    host_id: str | None = None,
    bus: Bus | None = None,
    embedded_qas: bool | None = None,
    keys: KeyRing | None = None,
    security: BrokerSecurity | None = None,
    thermal_source: Callable[[], float] | None = None,
    **options: Any,
) -> AsyncIterator[EngineClient]:
    """An ``EngineClient`` running (following and reporting) for the ``async with`` block.

    Without ``bootstrap_servers`` (or ``bus``) it uses an in-process bus and, unless
    ``embedded_qas=False``, runs QAS's observer and decider beside the engine; they sign with
    ``keys`` (an ephemeral key when none is given) and the engine adopts only what verifies.
    With Kafka, ``keys`` is the decider's key file: only decisions signed with it are adopted
    (without it, decisions are not verified). ``security``: TLS/SASL for the broker.
    ``thermal_source``: an announced thermal state (0..1) the embedded observer reports beside
    its sensors (the higher wins), e.g. a file a test harness writes.
    """
    settings = settings or Settings()
    host = host_id or settings.host_id or socket.gethostname()
    own_bus = bus is None
    bus = bus or make_bus(settings, bootstrap_servers, security=security)
    if embedded_qas is None:
        embedded_qas = own_bus and not bootstrap_servers
    if embedded_qas and keys is None:
        keys = KeyRing.ephemeral()
    if keys is not None and options.get("verify") is None:
        options["verify"] = signed_by(keys)
    if own_bus:
        await bus.start()
    stop = asyncio.Event()
    client = EngineClient(bus, settings, host, stop=stop, **options)
    tasks: list[asyncio.Task[None]] = []
    try:
        if embedded_qas:
            probe = HardwareProbe(
                settings, host, nvml=NvmlReader(load_pynvml()), thermal_source=thermal_source
            )
            tasks.append(asyncio.create_task(ObserverService(bus, probe, settings).run(stop)))
            decider = DeciderService(bus, settings, host, signer=keys)
            tasks.append(asyncio.create_task(decider.run(stop)))
        tasks.append(asyncio.create_task(client.run()))
        yield client
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        if own_bus:
            await bus.stop()
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r


class BackgroundClient:
    """``connect`` on a background thread, for an engine written as a plain loop.

    The engine's thread reads ``sizer``, ``precision``, ``store`` and ``current`` and calls
    ``record_batch``; adoption and reporting run on the client's own event loop.
    """

    def __init__(self, **connect_options: Any) -> None:
        self._options = connect_options
        self._ready = threading.Event()
        self._client: EngineClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="qas-engine-client", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to the engine's thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with connect(**self._options) as client:
            self._client = client
            self._ready.set()
            await client.stop.wait()

    def start(self, timeout: float = 30.0) -> BackgroundClient:
        self._thread.start()
        if not self._ready.wait(timeout) or self._client is None:
            raise RuntimeError(f"QAS engine client did not start: {self._error!r}")
        return self

    def close(self, timeout: float = 30.0) -> None:
        if self._client is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._client.stop.set)
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> EngineClient:
        assert self._client is not None, "BackgroundClient used before start()"
        return self._client

    @property
    def current(self) -> Adopted | None:
        return self.client.current

    @property
    def sizer(self) -> BatchSizer:
        return self.client.sizer

    @property
    def precision(self) -> PrecisionContext:
        return self.client.precision

    @property
    def store(self) -> EngineStore:
        return self.client.store

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def _submit(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop)

    def record_batch(self, seconds: float, items: int) -> None:
        self._call(self.client.record_batch, seconds, items)

    def publish_tick(self, symbol: str, price: float) -> None:
        self._submit(self.client.publish_tick(symbol, price))
