"""DeciderService on the in-process bus: inputs in, decisions out, bad records dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import Settings
from shared.csvseries import read_series
from shared.data import SAMPLE
from shared.market import WINDOW
from shared.messages import (
    DeadLetter,
    MarketEntropy,
    PriceTick,
    ProfitPotential,
    ScalingDecision,
    decode,
    encode,
)
from shared.precision import platform_top_bits
from tests.support.factories import reference_host, snapshot

S = Settings()
TOPICS = S.topics


@asynccontextmanager
async def running(bus: MemoryBus, now: list[float]) -> AsyncIterator[DeciderService]:
    svc = DeciderService(bus, S, "me", clock=lambda: now[0])
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        yield svc
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task


async def send(bus: MemoryBus, svc: DeciderService, topic: str, data: bytes) -> None:
    """Publish one record and wait until the service has handled it."""
    done = svc.stats[f"handled:{topic}"] + 1
    await bus.publish(topic, "h1", data)
    async with asyncio.timeout(5):
        await svc.drained(topic, done)


async def read(bus: MemoryBus, topic: str, kind: type[Any], expect: int) -> list[Any]:
    """Exactly ``expect`` records of ``topic``, as (key, message)."""
    reader = bus.consumer([topic], f"reader-{topic}")
    await reader.start()
    out: list[Any] = []
    async with asyncio.timeout(5):
        while len(out) < expect:
            out += [(r.key, decode(r.value, kind)) for r in await reader.getmany(timeout=0.05)]
    assert len(out) == expect and not await reader.getmany(timeout=0.05)
    return out


async def test_snapshot_entropy_and_profit_produce_a_decision_for_that_host() -> None:
    bus, now = MemoryBus(), [1000.0]
    snap = snapshot(reference_host(), host="h1", t=1000.0)
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.hardware, encode(snap))
        now[0] = 1010.0
        await send(bus, svc, TOPICS.entropy,
                   encode(MarketEntropy(event_time=1010.0, host_id="h1", value=0.5)))  # fmt: skip
        now[0] = 1020.0
        await send(bus, svc, TOPICS.profit,
                   encode(ProfitPotential(event_time=1020.0, host_id="h1", value=0.95)))  # fmt: skip
    assert svc.stats["decisions"] + svc.stats["held"] == 3
    out = await read(bus, TOPICS.decisions, ScalingDecision, svc.stats["decisions"])
    assert all(key == b"h1" and d.host_id == "h1" for key, d in out)
    first, last = out[0][1], out[-1][1]
    assert first.inputs.fingerprint == snap.fingerprint
    assert first.inputs.market_entropy == 0.5 and first.inputs.entropy_age_seconds is None
    assert last.inputs.profit_potential == 0.95 and last.inputs.profit_age_seconds == 0.0
    assert last.precision_bits == platform_top_bits()  # high value: the top tier
    assert last.sequence == len(out) and "h1" in svc.hosts and list(svc.hosts) == ["h1"]


async def test_ticks_derive_entropy_after_warm_up() -> None:
    prices = read_series(SAMPLE).prices[: WINDOW + 3].tolist()
    bus, now = MemoryBus(), [2000.0]
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.hardware, encode(snapshot(reference_host(), host="h1")))
        for i, p in enumerate(prices[:WINDOW]):  # WINDOW prices: WINDOW - 1 returns
            await send(bus, svc, TOPICS.ticks, encode(PriceTick(
                event_time=1000.0 + i, host_id="h1", symbol="SPX", price=p)))  # fmt: skip
        assert svc.stats["decisions"] + svc.stats["held"] == 1  # the hardware's
        assert svc.hosts["h1"].entropy is None
        for i, p in enumerate(prices[WINDOW:], start=WINDOW):
            await send(bus, svc, TOPICS.ticks, encode(PriceTick(
                event_time=1000.0 + i, host_id="h1", symbol="SPX", price=p)))  # fmt: skip
    state = svc.hosts["h1"]
    assert state.entropy is not None and state.entropy.source == "ticks"
    assert state.entropy.event_time == 1000.0 + len(prices) - 1
    assert state.profit is not None and state.profit.source == "heuristic:trend"
    assert svc.stats["decisions"] + svc.stats["held"] == 4
    assert svc.stats[f"consumed:{TOPICS.ticks}"] == len(prices)


async def test_fresh_engine_entropy_is_not_overridden_by_ticks() -> None:
    svc = DeciderService(MemoryBus(), S, "me", clock=lambda: 1000.0)
    await svc.on_hardware(snapshot(reference_host(), host="h1"))
    await svc.on_entropy(MarketEntropy(event_time=1030.0, host_id="h1", value=0.9))
    for i, p in enumerate(read_series(SAMPLE).prices[: WINDOW + 2].tolist()):
        await svc.on_tick(PriceTick(event_time=1000.0 + i, host_id="h1", symbol="SPX", price=p))
    entropy = svc.hosts["h1"].entropy
    assert entropy is not None and (entropy.source, entropy.value) == ("engine", 0.9)


async def test_malformed_records_go_to_the_dlq_and_the_service_keeps_going() -> None:
    bus, now = MemoryBus(), [1000.0]
    bad_json = b"{not json"
    out_of_range = b'{"event_time": 1000, "host_id": "h1", "value": 1.5}'
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.entropy, bad_json)
        await send(bus, svc, TOPICS.entropy, out_of_range)
        await send(bus, svc, TOPICS.hardware, encode(snapshot(reference_host(), host="h1")))
    letters = [d for _, d in await read(bus, TOPICS.dlq, DeadLetter, 2)]
    assert [ltr.payload for ltr in letters] == [bad_json, out_of_range]
    assert all(ltr.topic == TOPICS.entropy and ltr.service == "decider" for ltr in letters)
    assert all(ltr.reason.startswith("undecodable") and ltr.host_id == "me" for ltr in letters)
    assert svc.stats["dead_letters"] == 2 and svc.stats[f"handled:{TOPICS.entropy}"] == 2
    assert svc.stats[f"consumed:{TOPICS.entropy}"] == 0
    assert svc.stats[f"consumed:{TOPICS.hardware}"] == 1 and svc.stats["decisions"] == 1


async def test_drained_returns_once_the_records_were_handled() -> None:
    bus, now = MemoryBus(), [1000.0]
    for i in range(5):
        await bus.publish(TOPICS.hardware, f"h{i}", encode(snapshot(reference_host(), f"h{i}")))
        msg = MarketEntropy(event_time=1000.0 + i, host_id=f"h{i}", value=0.1 * i)
        await bus.publish(TOPICS.entropy, f"h{i}", encode(msg))
    async with running(bus, now) as svc:
        async with asyncio.timeout(5):
            await svc.drained(TOPICS.entropy, 5)
        assert svc.stats[f"handled:{TOPICS.entropy}"] == 5
        assert sorted(svc.hosts) == [f"h{i}" for i in range(5)]
        assert svc.stats["decisions"] == 5  # a first decision for each host


async def test_drained_returns_when_the_service_stops() -> None:
    bus = MemoryBus()
    svc = DeciderService(bus, S, "me", clock=lambda: 1000.0)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    waiter = asyncio.create_task(svc.drained(TOPICS.entropy, 1))
    await asyncio.sleep(0.05)
    stop.set()
    await task
    try:
        async with asyncio.timeout(1):
            await waiter
    finally:
        waiter.cancel()


async def test_tracked_symbols_are_capped_least_recently_seen_evicted() -> None:
    import msgspec

    settings = msgspec.structs.replace(Settings(), max_tracked_symbols=3)
    svc = DeciderService(MemoryBus(), settings, "d")
    await svc.on_hardware(snapshot(reference_host(), host="h"))
    for symbol in ("A", "B", "C", "A", "D"):  # A seen again before D arrives: B goes
        await svc.on_tick(PriceTick(event_time=1.0, host_id="h", symbol=symbol, price=100.0))
    assert [s for _, s in svc._estimators] == ["C", "A", "D"]
    assert svc.stats["symbols_evicted"] == 1
