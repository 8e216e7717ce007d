"""Broker killed and restarted on the same port mid-stream (Tansu keeps topics in memory, so
they are gone afterwards, as after a cluster rebuild): consuming goes on, stop stays prompt."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

import pytest

from services.bus.consume import Route, Subscriber, publish_retrying, serve
from services.bus.kafka import KafkaBus
from shared.messages import MarketEntropy, encode
from tests.support.broker import TansuBroker

pytestmark = pytest.mark.kafka

TOPICS = ["f.entropy", "f.dlq"]


def _bus(b: TansuBroker) -> KafkaBus:
    return KafkaBus(b.bootstrap, connect_timeout=15, send_timeout=3, topics=TOPICS)


async def _publish(bus: KafkaBus, value: float, stop: asyncio.Event) -> None:
    msg = MarketEntropy(event_time=time.time(), host_id="h", value=value)
    await publish_retrying(bus, "f.entropy", "h", encode(msg), stop, "test")


async def _committed(bootstrap: str, group: str) -> bool:
    """Whether the broker holds a committed offset for ``group`` (a second client reads it)."""
    from kafka import KafkaAdminClient

    def read() -> bool:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            offsets = admin.list_group_offsets(group).get(group, {})  # {group: {tp: offset}}
            return any(o.offset > 0 for o in offsets.values())
        finally:
            admin.close()

    try:
        return await asyncio.to_thread(read)
    except Exception:  # the broker not answering yet is "not yet"
        return False


async def test_broker_kill_and_restart_consuming_resumes_and_stop_is_prompt() -> None:
    broker = TansuBroker().start()
    stop, pub_stop = asyncio.Event(), asyncio.Event()
    seen: list[float] = []
    stats: Counter[str] = Counter()

    async def handle(m: MarketEntropy) -> None:
        seen.append(m.value)

    bus = _bus(broker)
    task: asyncio.Task[None] | None = None
    try:
        await bus.start()
        sub = Subscriber(group="f", service="fault", host_id="h", dlq_topic="f.dlq")
        task = asyncio.create_task(
            serve(bus, {"f.entropy": Route(MarketEntropy, handle)}, sub, stop=stop, stats=stats)
        )
        async with asyncio.timeout(30):
            while 0.1 not in seen:
                await _publish(bus, 0.1, pub_stop)
                await asyncio.sleep(0.5)

        assert broker.proc is not None
        broker.proc.kill()
        broker.proc.wait()
        await asyncio.sleep(2)
        broker = TansuBroker(port=broker.port).start()

        restarted = time.monotonic()
        async with asyncio.timeout(45):  # publish until the consumer sees one again
            while 0.9 not in seen:
                await asyncio.wait_for(_publish(bus, 0.9, pub_stop), 10)
                await asyncio.sleep(0.5)
        resumed = time.monotonic() - restarted
        assert resumed < 30, f"records flowed again only after {resumed:.1f} s"
        print(f"consuming resumed {resumed:.1f} s after the broker restart")
        # And offsets are saved again (the restarted broker forgot the group: the consumer
        # rejoins instead of having every commit refused).
        saved = time.monotonic()
        async with asyncio.timeout(45):
            while not await _committed(broker.bootstrap, "f"):
                with contextlib.suppress(TimeoutError):  # records keep coming, as in service
                    await asyncio.wait_for(_publish(bus, 0.5, pub_stop), 5)
                await asyncio.sleep(1.0)
        print(f"offsets saved again {time.monotonic() - saved:.1f} s after consuming resumed")

        stop.set()
        t0 = time.monotonic()
        await asyncio.wait_for(task, 10)
        await asyncio.wait_for(bus.stop(), 10)
        assert time.monotonic() - t0 < 10
        print(f"stopped in {time.monotonic() - t0:.1f} s")
    finally:
        stop.set()
        pub_stop.set()
        if task is not None and not task.done():
            task.cancel()
        broker.stop()
