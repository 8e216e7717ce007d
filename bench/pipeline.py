"""Pipeline: market events/s and latency (event published -> decision consumed), embedded and Kafka.

Each transport is measured twice in the same run: through the QAS decider (decode, decide,
encode, publish) and through a raw echo that republishes the same bytes (the transport's own
cost). "vs echo" is QAS / echo: what QAS adds on top of moving the bytes. Every measurement
uses fresh topics, so no reader sees an earlier measurement's backlog.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from bench.common import pct, table
from services.bus.base import Bus
from services.bus.kafka import KafkaBus
from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import DecisionConstants, Settings, Topics
from shared.messages import MarketEntropy, ScalingDecision, decode, encode
from tests.support.factories import reference_host, snapshot

HOST = "bench-host"
_RUN = itertools.count()
Service = Callable[[Bus, asyncio.Event, Settings], Awaitable[None]]


def _settings() -> Settings:
    p = f"bench{time.monotonic_ns()}-{next(_RUN)}"
    topics = Topics(**{name: f"{p}.{name}" for name in Topics.__struct_fields__})
    # tolerance 0: every market event makes a decision, so each one can be timed
    return Settings(
        topics=topics, decision=DecisionConstants(tolerance=0.0, max_jitter_seconds=0.0)
    )


async def _echo(bus: Bus, stop: asyncio.Event, s: Settings) -> None:
    """The baseline: consume market events and republish the bytes unchanged."""
    consumer = bus.consumer([s.topics.entropy], "bench-echo")
    await consumer.start()
    try:
        while not stop.is_set():
            records = await consumer.getmany(timeout=0.05)
            for r in records:
                await bus.publish(s.topics.decisions, HOST, r.value)
            if records:
                await consumer.commit(records)
    finally:
        await consumer.stop()


async def _qas(bus: Bus, stop: asyncio.Event, s: Settings) -> None:
    await DeciderService(bus, s, HOST, group="bench-decider").run(stop)


async def _measure(
    make: Callable[[Settings], Bus], service: Service, n: int, rate: float | None, is_qas: bool
) -> tuple[float, list[float]]:
    """Publish n events (paced at `rate`/s, or as fast as possible): (events/s, latencies)."""
    s = _settings()
    t = s.topics
    bus = make(s)
    await bus.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service(bus, stop, s))
    reader = bus.consumer([t.decisions], "bench-reader")
    await reader.start()
    try:
        if is_qas:
            await bus.publish(
                t.hardware, HOST, encode(snapshot(reference_host(), host=HOST, t=time.time()))
            )
        # warm-up: both consumer groups joined and flowing
        await bus.publish(
            t.entropy, HOST, encode(MarketEntropy(event_time=time.time(), host_id=HOST, value=0.0))
        )
        async with asyncio.timeout(60):
            while not await reader.getmany(timeout=0.2):
                pass
        sent_at: dict[float, float] = {}
        latencies: list[float] = []

        async def read() -> None:
            while len(latencies) < n:
                for r in await reader.getmany(timeout=0.2):
                    value = (
                        decode(r.value, ScalingDecision).inputs.market_entropy
                        if is_qas
                        else decode(r.value, MarketEntropy).value
                    )
                    if value in sent_at:
                        latencies.append(time.perf_counter() - sent_at.pop(value))

        reading = asyncio.create_task(read())
        start = time.perf_counter()
        for i in range(n):
            value = (i + 1) / (n + 1)
            sent_at[value] = time.perf_counter()
            msg = MarketEntropy(event_time=time.time(), host_id=HOST, value=value)
            await bus.publish(t.entropy, HOST, encode(msg))
            if rate:
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        async with asyncio.timeout(120):
            await reading
        return n / (time.perf_counter() - start), latencies
    finally:
        stop.set()
        await task
        await reader.stop()
        await bus.stop()


async def _transport(
    name: str, make: Callable[[Settings], Bus], n: int, rate: float
) -> list[list[object]]:
    results = {}
    for label, svc, is_qas in (("echo", _echo, False), ("QAS", _qas, True)):
        eps, _ = await _measure(make, svc, n, None, is_qas)
        _, lat = await _measure(make, svc, n // 2, rate, is_qas)
        results[label] = (eps, pct(lat, 50) * 1e3, pct(lat, 99) * 1e3)
    q, e = results["QAS"], results["echo"]
    return [
        [name, "echo (baseline)", e[0], e[1], e[2], "1"],
        [name, "QAS decider", q[0], q[1], q[2], f"{q[0] / e[0]:.2f}"],
    ]


def main(quick: bool = False) -> None:
    from tests.support.broker import TansuBroker

    n = 400 if quick else 2000
    rate = 200.0
    rows = asyncio.run(_transport("embedded", lambda s: MemoryBus(), n, rate))
    broker = TansuBroker().start()
    try:

        def kafka(s: Settings) -> Bus:
            t = s.topics
            return KafkaBus(broker.bootstrap, topics=[t.hardware, t.entropy, t.decisions, t.dlq])

        rows += asyncio.run(_transport("kafka (Tansu, loopback)", kafka, n, rate))
    finally:
        broker.stop()
    print(
        f"   events/s: {n} events as fast as possible; latency: {n // 2} events paced at {rate:g}/s"
    )
    print(table(["transport", "path", "events/s", "p50 ms", "p99 ms", "events/s vs echo"], rows))
