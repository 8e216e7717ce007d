from __future__ import annotations

import asyncio

from services.bus.memory import MemoryBus


async def _drain(consumer, n: int, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    got = []
    async with asyncio.timeout(timeout):
        while len(got) < n:
            got += await consumer.getmany(timeout=0.1)
    return got


async def test_per_key_order_and_every_group_sees_everything() -> None:
    bus = MemoryBus(partitions=3)
    for i in range(30):
        await bus.publish("t", f"host{i % 3}", str(i).encode())
    for group in ("a", "b"):
        c = bus.consumer(["t"], group)
        await c.start()
        got = await _drain(c, 30)
        assert sorted(int(r.value) for r in got) == list(range(30))
        for host in ("host0", "host1", "host2"):
            values = [int(r.value) for r in got if r.key == host.encode()]
            assert values == sorted(values) and len(values) == 10


async def test_resume_from_committed_offset_and_redeliver_uncommitted() -> None:
    bus = MemoryBus(partitions=1)
    for i in range(5):
        await bus.publish("t", "k", str(i).encode())
    c = bus.consumer(["t"], "g")
    await c.start()
    first = await _drain(c, 5)
    await c.commit(first[:3])  # processed 0..2 only
    await c.stop()
    c2 = bus.consumer(["t"], "g")
    await c2.start()
    again = await _drain(c2, 2)
    assert [r.value for r in again] == [b"3", b"4"]  # nothing committed is re-read, nothing lost
    assert await c2.getmany(timeout=0.05) == []


async def test_getmany_wakes_on_publish() -> None:
    bus = MemoryBus()
    c = bus.consumer(["t"], "g")
    await c.start()
    waiter = asyncio.create_task(c.getmany(timeout=5))
    await asyncio.sleep(0.01)
    await bus.publish("t", "k", b"x")
    assert [r.value for r in await asyncio.wait_for(waiter, 1)] == [b"x"]


async def test_committed_records_are_trimmed_and_retention_caps_growth() -> None:
    bus = MemoryBus(partitions=1, retention=10)
    c = bus.consumer(["t"], "g")
    await c.start()
    for i in range(5):
        await bus.publish("t", "k", b"%d" % i)
    await c.commit(await _drain(c, 5))
    await bus.publish("t", "k", b"5")
    part = bus._topics["t"][0]
    assert part.base == 5 and len(part.records) == 1
    for _ in range(50):
        await bus.publish("t", "k", b"x")
    assert len(bus._topics["t"][0].records) <= 10
