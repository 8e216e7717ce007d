from __future__ import annotations

import asyncio
from collections import Counter

from services.bus.consume import Route, Subscriber, consume
from services.bus.memory import MemoryBus
from shared.messages import DeadLetter, MarketEntropy, decode, encode


async def _run_until(bus: MemoryBus, routes: dict[str, Route], done, stats):  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    consumer = bus.consumer(list(routes), "svc")
    await consumer.start()
    task = asyncio.create_task(
        consume(
            bus,
            consumer,
            routes,
            Subscriber(
                group="svc", service="test", host_id="me", dlq_topic="qas.dlq", poll_seconds=0.02
            ),
            stop=stop,
            stats=stats,
        )
    )
    async with asyncio.timeout(3):
        while not done():
            await asyncio.sleep(0.01)
    stop.set()
    await task
    await consumer.stop()


async def test_malformed_goes_to_dlq_with_original_bytes_and_processing_continues() -> None:
    bus = MemoryBus()
    seen: list[float] = []

    async def handle(m: MarketEntropy) -> None:
        seen.append(m.value)

    bad = b'{"event_time": 1, "host_id": "h", "value": 7}'
    await bus.publish(
        "market.entropy", "h", encode(MarketEntropy(event_time=1, host_id="h", value=0.1))
    )
    await bus.publish("market.entropy", "h", bad)
    await bus.publish("market.entropy", "h", b"\xff\xfe garbage")
    await bus.publish(
        "market.entropy", "h", encode(MarketEntropy(event_time=2, host_id="h", value=0.2))
    )
    stats: Counter[str] = Counter()
    await _run_until(
        bus, {"market.entropy": Route(MarketEntropy, handle)}, lambda: len(seen) == 2, stats
    )

    assert seen == [0.1, 0.2]
    assert stats["dead_letters"] == 2
    dlq = bus.consumer(["qas.dlq"], "reader")
    await dlq.start()
    letters = [decode(r.value, DeadLetter) for r in await dlq.getmany(timeout=0.5)]
    assert [ltr.payload for ltr in letters] == [bad, b"\xff\xfe garbage"]
    assert all(ltr.topic == "market.entropy" and ltr.service == "test" for ltr in letters)
    assert "<= 1.0" in letters[0].reason and letters[0].offset == 1


async def test_handler_error_is_dead_lettered_not_fatal_and_batch_committed() -> None:
    bus = MemoryBus(partitions=1)
    calls: list[float] = []

    async def handle(m: MarketEntropy) -> None:
        calls.append(m.value)
        if m.value == 0.5:
            raise RuntimeError("boom")

    for v in (0.4, 0.5, 0.6):
        await bus.publish("e", "h", encode(MarketEntropy(event_time=1, host_id="h", value=v)))
    stats: Counter[str] = Counter()
    await _run_until(bus, {"e": Route(MarketEntropy, handle)}, lambda: len(calls) == 3, stats)
    assert stats["dead_letters"] == 1 and stats["consumed:e"] == 2
    assert bus._committed["svc"][("e", 0)] == 3  # nothing left to redeliver


async def test_invalid_utf8_deep_nesting_and_2mb_records_are_dead_lettered_bounded() -> None:
    import hashlib

    from shared.bounds import MAX_LETTER_PAYLOAD

    bus = MemoryBus(partitions=1)
    seen: list[float] = []

    async def handle(m: MarketEntropy) -> None:
        seen.append(m.value)

    utf8 = b'{"event_time":1,"host_id":"\xff\xfe","value":0.5}'
    deep = b'{"x":' + b"[" * 5000 + b"]" * 5000 + b',"event_time":1,"host_id":"h","value":0.5}'
    huge = b'{"event_time":1,"host_id":"h","value":0.5,"x":"' + b"a" * 2_000_000 + b'"}'
    for bad in (utf8, deep, huge):
        await bus.publish("e", "h", bad)
    await bus.publish("e", "h", encode(MarketEntropy(event_time=2, host_id="h", value=0.2)))
    stats: Counter[str] = Counter()
    await _run_until(bus, {"e": Route(MarketEntropy, handle)}, lambda: seen == [0.2], stats)

    assert stats["dead_letters"] == 3 and bus._committed["svc"][("e", 0)] == 4
    dlq = bus.consumer(["qas.dlq"], "reader")
    await dlq.start()
    raw = [r.value for r in await dlq.getmany(timeout=0.5)]
    letters = [decode(v, DeadLetter) for v in raw]
    # msgspec < 0.23 raised UnicodeDecodeError ('utf-8' codec ...); 0.23 says "Invalid UTF-8"
    assert "utf-8" in letters[0].reason.lower() and letters[0].payload == utf8
    assert "nested deeper" in letters[1].reason and letters[1].payload == deep
    assert "larger than" in letters[2].reason
    assert letters[2].payload == huge[:MAX_LETTER_PAYLOAD] and letters[2].size == len(huge)
    assert letters[2].sha256 == hashlib.sha256(huge).hexdigest()
    assert max(map(len, raw)) < 100_000  # fits any broker's default request limit


async def test_a_dead_letter_the_broker_refuses_is_counted_and_committed_past(
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from services.bus import consume as consume_mod
    from services.bus.base import BusError

    monkeypatch.setattr(consume_mod, "FIRST_BACKOFF_SECONDS", 0.0)

    class NoDlqBus(MemoryBus):
        async def publish(self, topic: str, key: str, value: bytes) -> None:
            if topic == "qas.dlq":
                raise BusError("message too large", retriable=True)
            await super().publish(topic, key, value)

    bus = NoDlqBus(partitions=1)
    seen: list[float] = []

    async def handle(m: MarketEntropy) -> None:
        seen.append(m.value)

    await bus.publish("e", "h", b"not json")
    await bus.publish("e", "h", encode(MarketEntropy(event_time=2, host_id="h", value=0.2)))
    stats: Counter[str] = Counter()
    await _run_until(bus, {"e": Route(MarketEntropy, handle)}, lambda: seen == [0.2], stats)
    assert stats["dead_letters_dropped"] == 1 and bus._committed["svc"][("e", 0)] == 2
