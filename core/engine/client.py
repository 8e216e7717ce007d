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
import concurrent.futures
import contextlib
import dataclasses
import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from core.engine.compute import BatchSizer, PrecisionContext
from core.engine.errors import ClientClosed, ClientFailed
from core.engine.feedback import FeedbackReporter, check_batch
from core.engine.follow import Adopted, DecisionFollower, Verify, signed_by
from core.engine.memory import (
    MemoryConfig,
    MemoryReader,
    MemoryReading,
    MemoryState,
    MemoryStep,
)
from core.engine.memory import step as memory_step
from core.engine.options import check
from core.engine.store import EngineStore
from services.bus.base import Bus
from services.bus.kafka import KafkaBus
from services.bus.memory import MemoryBus
from services.bus.security import BrokerSecurity
from services.decider.service import DeciderService
from services.malloc import pin_malloc_thresholds, release_free_heap
from services.observer.nvml import NvmlReader, load_pynvml
from services.observer.probe import HardwareProbe
from services.observer.service import ObserverService
from shared.config import Settings
from shared.messages import FeedbackReport, MarketEntropy, PriceTick, ProfitPotential, encode
from shared.signing import KeyRing

log = logging.getLogger("qas.engine")


def backoff_seconds(attempt: int) -> float:
    """Wait before restarting a failed task: 0.5 s doubling per consecutive failure, up to 30."""
    return float(min(30.0, 0.5 * 2.0 ** (attempt - 1)))


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
        memory_target: float = 0.9,
        memory_horizon_seconds: float = 5.0,
        memory_reader: Callable[[], MemoryReading] | None = None,
        batch_size: int | None = None,
        min_batch_size: int = 1,
        max_batch_size: int | None = None,
        feedback_interval_seconds: float = 1.0,
        stale_after_seconds: float = 120.0,
        adopted_kept: int = 256,
        reports_kept: int = 256,
        verify: Verify | None = None,
        clock: Callable[[], float] = time.time,
        stop: asyncio.Event | None = None,
        sizer: BatchSizer | None = None,
        restart_backoff: Callable[[int], float] = backoff_seconds,
    ) -> None:
        check("EngineClient", {
            "host_id": host_id, "latency_objective_ms": latency_objective_ms,
            "memory_limit_bytes": memory_limit_bytes, "store_budget_bytes": store_budget_bytes,
            "max_store_bytes": max_store_bytes, "memory_target": memory_target,
            "memory_horizon_seconds": memory_horizon_seconds, "memory_reader": memory_reader,
            "batch_size": batch_size, "min_batch_size": min_batch_size,
            "max_batch_size": max_batch_size,
            "feedback_interval_seconds": feedback_interval_seconds,
            "stale_after_seconds": stale_after_seconds, "adopted_kept": adopted_kept,
            "reports_kept": reports_kept, "verify": verify, "clock": clock,
        })  # fmt: skip
        self.bus = bus
        self.settings = settings or Settings()
        self.host_id = host_id or self.settings.host_id or socket.gethostname()
        self.stop = stop or asyncio.Event()
        self.clock = clock
        self.follower = DecisionFollower(
            bus, self.settings, self.host_id, verify=verify, clock=clock, stop=self.stop
        )
        self.store = EngineStore(
            int(store_budget_bytes),
            max_budget_bytes=None if max_store_bytes is None else int(max_store_bytes),
            clock=clock,
        )
        self.sizer = sizer or BatchSizer.declared(batch_size, min_batch_size, max_batch_size)
        self.precision = PrecisionContext()
        self.reporter = FeedbackReporter(
            self.host_id,
            float(latency_objective_ms),
            None if memory_limit_bytes is None else int(memory_limit_bytes),
            clock=clock,
            sizer=self.sizer,
        )
        self.feedback_interval_seconds = float(feedback_interval_seconds)
        self.stale_after_seconds = float(stale_after_seconds)
        self.restart_backoff = restart_backoff
        self.on_adopt: Callable[[Adopted], None] | None = None
        self.listeners: list[Callable[[Adopted], None]] = []  # called before ``on_adopt``
        # Bounded: one report a second is 86 400 a day; only the newest are kept.
        self.adopted: deque[Adopted] = deque(maxlen=adopted_kept)
        self.reports: deque[FeedbackReport] = deque(maxlen=reports_kept)
        # The memory controller: one reading and one step per feedback interval, never per batch
        self.memory_reader = memory_reader or MemoryReader(
            None if memory_limit_bytes is None else int(memory_limit_bytes), clock=clock
        )
        target = float(memory_target)
        self.memory_config = MemoryConfig(
            target=target, low=target - 0.05, high=target + 0.05,
            horizon_seconds=max(float(memory_horizon_seconds), 2 * self.feedback_interval_seconds),
        )  # fmt: skip
        self.memory_state = MemoryState()
        self.memory: MemoryStep | None = None  # the last step
        self.memory_steps: deque[MemoryStep] = deque(maxlen=reports_kept)  # the newest steps
        self._items_seen = 0  # items recorded, for the controller's bytes per item
        self.failures = 0  # background task failures, restarted or not
        self.last_error: BaseException | None = None
        self.fatal: BaseException | None = None  # a failure that was not restarted
        self.closed = False
        self._failing: set[str] = set()  # tasks whose last run failed (until they succeed)

    # --- health -----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """No background task is failing now and the client is open."""
        return not self.closed and self.fatal is None and not self._failing

    def _check_usable(self, what: str) -> None:
        if self.closed:
            raise ClientClosed(f"{what} after the QAS engine client was closed")
        if self.fatal is not None:
            raise ClientFailed(
                f"{what}: the QAS engine client stopped adopting decisions: {self.fatal!r}"
            ) from self.fatal

    def _failed(self, task: str, exc: BaseException, restart: bool) -> None:
        self.failures += 1
        self.last_error = exc
        self._failing.add(task)
        if restart:
            log.error("QAS %s failed (failure %d), restarting: %r", task, self.failures, exc,
                      exc_info=exc)  # fmt: skip
        else:
            self.fatal = exc
            log.error("QAS %s failed (failure %d), not restarted; the engine's next call "
                      "raises it: %r", task, self.failures, exc, exc_info=exc)  # fmt: skip

    @property
    def current(self) -> Adopted | None:
        """The decision in force, with its age now and whether it is stale (older than
        ``stale_after_seconds``); None before the first. Raises ``ClientFailed`` once the
        follower has died and ``ClientClosed`` after close."""
        self._check_usable("current")
        a = self.follower.current
        if a is None:
            return None
        age = max(0.0, self.clock() - a.decision.event_time)
        return dataclasses.replace(a, age_seconds=age, stale=age > self.stale_after_seconds)

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
        for listener in self.listeners:
            listener(a)
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
        """One batch of ``items`` items (an item: one symbol at one bar) took ``seconds``."""
        self._check_usable("record_batch")
        self.reporter.record_batch(seconds, items)
        self._items_seen += items

    def control_memory(self) -> MemoryStep:
        """One memory-controller step: read the engine's memory, set the store's budget."""
        reading = self.memory_reader()
        before = self.store.nbytes()
        items, self._items_seen = self._items_seen, 0
        self.memory_state, done = memory_step(
            self.memory_state, reading, before, self.memory_config, items=items
        )
        if done.budget_bytes != self.store.controller_budget_bytes:
            report = self.store.limit_budget(done.budget_bytes)
            if report.bytes_after < report.bytes_before:
                release_free_heap()  # else freed store pages would read as the engine's growth
        if done.action != "hold":
            log.info("%s", done.reason)
        self.memory = done
        self.memory_steps.append(done)
        return done

    async def send_feedback(self) -> FeedbackReport:
        """Publish the interval's report on ``qas.feedback`` and start the next interval
        (a memory-controller step first: the report says what it did)."""
        m = self.control_memory()
        report = self.reporter.report(
            store_bytes=self.store.nbytes(), store_error_bound=self.store.error_bound()
        )
        limit = report.memory_limit_bytes if m.limit_bytes is None else m.limit_bytes
        report = msgspec.structs.replace(
            report, memory_limit_bytes=limit,
            store_budget_bytes=m.budget_bytes, memory_used_bytes=m.used_bytes,
            memory_source=m.source, memory_pressure=m.pressure, memory_note=m.reason[:1024],
        )  # fmt: skip
        await self.bus.publish(self.settings.topics.feedback, self.host_id, encode(report))
        self.reports.append(report)
        return report

    async def feedback_loop(self) -> None:
        """A report every interval in which the engine computed at least one batch (a
        memory-controller step every interval, and one at the start)."""
        self.control_memory()
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.feedback_interval_seconds)
            if self.reporter.batches:
                await self.send_feedback()
            else:
                self.control_memory()  # memory grows whether or not a batch was computed
            self._failing.discard("feedback")

    async def _supervise_feedback(self) -> None:
        """The feedback loop, restarted with backoff when it fails: a lost report is safe."""
        attempt = 0
        while not self.stop.is_set():
            try:
                await self.feedback_loop()
                return
            except Exception as exc:
                attempt = attempt + 1 if "feedback" in self._failing else 1
                self._failed("feedback", exc, restart=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.restart_backoff(attempt))

    async def _supervise_follow(self) -> None:
        """The follower. Reading decisions is restarted with backoff when the bus fails (the
        decision in force stays, the group resumes from its commits); a failed adoption is not
        (it may have half-enacted a decision, or ``on_adopt`` is broken), so the engine is told
        instead: its next ``record_batch``/``current`` raises."""
        attempt = 0
        while not self.stop.is_set():
            try:
                async for a in self.follower:
                    try:
                        self._adopted(a)
                    except Exception as exc:
                        self._failed("decision adoption", exc, restart=False)
                        return
                    self._failing.discard("decision follower")
                    attempt = 0
                return
            except Exception as exc:
                attempt += 1
                self._failed("decision follower", exc, restart=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.restart_backoff(attempt))

    async def run(self) -> None:
        """Follow decisions and report feedback until ``stop`` is set."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._supervise_follow())
            tg.create_task(self._supervise_feedback())

    def close(self) -> None:
        """Stop the client's tasks and refuse further use (``ClientClosed``). Idempotent."""
        self.closed = True
        self.stop.set()
        self.store.close()

    # --- market inputs (optional: QAS derives entropy from ticks) ----------------------------

    async def publish_tick(
        self, symbol: str, price: float, event_time: float | None = None
    ) -> None:
        self._check_usable("publish_tick")
        t = time.time() if event_time is None else event_time
        tick = PriceTick(event_time=t, host_id=self.host_id, symbol=symbol, price=price)
        await self.bus.publish(self.settings.topics.ticks, self.host_id, encode(tick))

    async def publish_inputs(
        self, *, entropy: float | None = None, profit: float | None = None
    ) -> None:
        self._check_usable("publish_inputs")
        t = time.time()
        if entropy is not None:
            m = MarketEntropy(event_time=t, host_id=self.host_id, value=entropy)
            await self.bus.publish(self.settings.topics.entropy, self.host_id, encode(m))
        if profit is not None:
            p = ProfitPotential(event_time=t, host_id=self.host_id, value=profit)
            await self.bus.publish(self.settings.topics.profit, self.host_id, encode(p))

    async def publish_ticks(
        self, ticks: Iterable[tuple[str, float]], event_time: float | None = None
    ) -> None:
        """Several ``(symbol, price)`` ticks of one instant."""
        for symbol, price in ticks:
            await self.publish_tick(symbol, price, event_time)


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
    With Kafka, ``keys`` holds the decider's public keys (``app.keys.load_verify_key_file``
    of ``qas.key.pub``): only decisions signed by them are adopted, and the engine can verify
    but never sign (without ``keys``, decisions are not verified). ``security``: TLS/SASL for the broker.
    ``thermal_source``: an announced thermal state (0..1) the embedded observer reports beside
    its sensors (the higher wins), e.g. a file a test harness writes.

    It pins glibc's mmap threshold for the process (``services.malloc``): the store frees each
    float64 block it compresses, and with glibc's sliding threshold those frees would stay in the
    heap, so the engine's resident memory would not fall when the store's does.
    """
    check("connect", {"bootstrap_servers": bootstrap_servers, "host_id": host_id,
                      "embedded_qas": embedded_qas, "thermal_source": thermal_source, **options},
          known=_PASSED_ON)  # fmt: skip
    pin_malloc_thresholds()
    settings = settings or Settings()
    host = host_id or settings.host_id or socket.gethostname()
    own_bus = bus is None
    bus = bus or make_bus(settings, bootstrap_servers, security=security)
    if embedded_qas is None:
        embedded_qas = own_bus and not bootstrap_servers
    if embedded_qas and keys is None:
        keys = KeyRing.ephemeral()
    if embedded_qas and keys is not None:
        keys.signer  # noqa: B018 - the embedded decider signs: public keys alone raise here
    if keys is not None and options.get("verify") is None:
        options["verify"] = signed_by(keys)
    stop = asyncio.Event()
    client = EngineClient(bus, settings, host, stop=stop, **options)
    if own_bus:
        await bus.start()
    tasks: list[asyncio.Task[None]] = []

    def watch(name: str, task: asyncio.Task[None]) -> None:
        # QAS beside the engine: without it no decision comes, so the engine must be told
        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None and not stop.is_set():
                client._failed(name, t.exception(), restart=False)  # type: ignore[arg-type]

        task.add_done_callback(done)
        tasks.append(task)

    try:
        if embedded_qas:
            probe = HardwareProbe(
                settings, host, nvml=NvmlReader(load_pynvml()), thermal_source=thermal_source
            )
            watch(
                "embedded observer",
                asyncio.create_task(ObserverService(bus, probe, settings).run(stop)),
            )
            decider = DeciderService(bus, settings, host, signer=keys)
            watch("embedded decider", asyncio.create_task(decider.run(stop)))
        tasks.append(asyncio.create_task(client.run()))
        yield client
    finally:
        client.close()
        # failures were logged at ERROR, counted and kept in ``client.last_error`` as they
        # happened; closing does not raise them a second time
        await asyncio.gather(*tasks, return_exceptions=True)
        if own_bus:
            await bus.stop()


#: What ``connect`` passes on to ``EngineClient`` or uses itself, beyond the declared options.
_PASSED_ON = ("settings", "bus", "keys", "security", "sizer", "restart_backoff")


class BackgroundClient:
    """``connect`` on a background thread, for an engine written as a plain loop.

    The engine's thread reads ``sizer``, ``precision``, ``store`` and ``current`` and calls
    ``record_batch``; adoption and reporting run on the client's own event loop, and so does
    ``on_adopt`` (keep it short; ``decisions()`` hands adoptions to the engine's thread instead).
    The options are ``connect``'s, validated here, before the thread starts.
    """

    def __init__(self, **connect_options: Any) -> None:
        check("BackgroundClient", connect_options, known=_PASSED_ON)
        self._options = connect_options
        self._ready = threading.Event()
        self._client: EngineClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._on_adopt: Callable[[Adopted], None] | None = None
        self._queues: list[queue.SimpleQueue[Adopted]] = []
        self._in_flight: set[concurrent.futures.Future[None]] = set()  # publishes not yet sent
        self._thread = threading.Thread(target=self._main, name="qas-engine-client", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to the engine's thread
            self._error = exc
            log.error("QAS engine client thread failed: %r", exc, exc_info=exc)
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with connect(**self._options) as client:
            client.on_adopt = self._on_adopt
            client.listeners.append(self._hand_over)
            self._client = client
            self._ready.set()
            await client.stop.wait()

    def _hand_over(self, a: Adopted) -> None:
        for q in list(self._queues):
            q.put(a)

    def start(self, timeout: float = 30.0) -> BackgroundClient:
        if self._closed:
            raise ClientClosed("BackgroundClient.start() after close()")
        self._thread.start()
        if not self._ready.wait(timeout) or self._client is None:
            raise RuntimeError(f"QAS engine client did not start: {self._error!r}")
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop the client's thread; later calls raise ``ClientClosed``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # what the engine published before closing is sent first
        concurrent.futures.wait(list(self._in_flight), timeout)
        if self._client is not None and self._loop is not None:
            self._client.store.close()
            with contextlib.suppress(RuntimeError):  # the loop may be gone already
                self._loop.call_soon_threadsafe(self._client.close)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> EngineClient:
        """The asyncio client behind this one (its loop runs on the client's thread)."""
        if self._closed:
            raise ClientClosed("BackgroundClient used after close()")
        if self._client is None:
            raise RuntimeError("BackgroundClient used before start()")
        return self._client

    @property
    def current(self) -> Adopted | None:
        self._loop_or_closed("current")
        return self.client.current

    @property
    def healthy(self) -> bool:
        return (
            not self._closed
            and self._error is None
            and self._thread.is_alive()
            and self._client is not None
            and self._client.healthy
        )

    @property
    def last_error(self) -> BaseException | None:
        if self._error is not None or self._client is None:
            return self._error
        return self._client.last_error

    @property
    def on_adopt(self) -> Callable[[Adopted], None] | None:
        return self._on_adopt

    @on_adopt.setter
    def on_adopt(self, callback: Callable[[Adopted], None] | None) -> None:
        """Called on the client's thread for each adopted decision."""
        self._on_adopt = callback
        if self._client is not None:
            self._client.on_adopt = callback

    def decisions(self, poll_seconds: float = 0.1) -> Iterator[Adopted]:
        """Each adopted decision, on the calling thread, until the client is closed."""
        self._loop_or_closed("decisions")
        q: queue.SimpleQueue[Adopted] = queue.SimpleQueue()
        self._queues.append(q)
        return self._drain(q, poll_seconds)

    def _drain(self, q: queue.SimpleQueue[Adopted], poll_seconds: float) -> Iterator[Adopted]:
        try:
            while not self._closed:
                self.client._check_usable("decisions")
                with contextlib.suppress(queue.Empty):
                    yield q.get(timeout=poll_seconds)
        finally:
            self._queues.remove(q)

    @property
    def sizer(self) -> BatchSizer:
        return self.client.sizer

    @property
    def precision(self) -> PrecisionContext:
        return self.client.precision

    @property
    def store(self) -> EngineStore:
        return self.client.store

    def _loop_or_closed(self, what: str) -> asyncio.AbstractEventLoop:
        client = self.client  # ClientClosed after our close()
        if self._error is not None or not self._thread.is_alive() or self._loop is None:
            raise ClientFailed(
                f"{what}: the QAS engine client's thread has stopped: {self._error!r}"
            ) from self._error
        client._check_usable(what)
        return self._loop

    def _submit(self, what: str, coro: Coroutine[Any, Any, None]) -> None:
        client = self.client
        try:
            loop = self._loop_or_closed(what)
        except BaseException:
            coro.close()  # never scheduled: no "coroutine never awaited" warning
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        self._in_flight.add(future)

        def done(f: concurrent.futures.Future[None]) -> None:
            self._in_flight.discard(f)
            exc = None if f.cancelled() else f.exception()
            if exc is None:
                client._failing.discard("publish")
            else:
                client._failed("publish", exc, restart=True)

        future.add_done_callback(done)

    def record_batch(self, seconds: float, items: int) -> None:
        """One batch of ``items`` items (an item: one symbol at one bar) took ``seconds``."""
        check_batch(seconds, items)  # here, on the engine's thread, not lost on the client's
        self._loop_or_closed("record_batch").call_soon_threadsafe(
            self.client.record_batch, seconds, items
        )

    def publish_tick(self, symbol: str, price: float, event_time: float | None = None) -> None:
        self._submit("publish_tick", self.client.publish_tick(symbol, price, event_time))

    def publish_ticks(
        self, ticks: Iterable[tuple[str, float]], event_time: float | None = None
    ) -> None:
        self._submit("publish_ticks", self.client.publish_ticks(list(ticks), event_time))

    def publish_inputs(self, *, entropy: float | None = None, profit: float | None = None) -> None:
        self._submit("publish_inputs", self.client.publish_inputs(entropy=entropy, profit=profit))
