"""A restarted Tansu keeps produces to a topic it no longer knows, then starts the topic's
offsets at 0 when the topic is created again, refusing each later produce there until as many
have been tried (services/bus/kafka.py publish). Every publish must still get through, in order
and once, against the real broker."""

from __future__ import annotations

import asyncio

from services.bus.kafka import KafkaBus
from tests.support.broker import TansuBroker

BEFORE = 20  # records sent to the restarted broker before the topic is created again


async def test_publishes_get_through_a_topic_created_again_after_a_restart() -> None:
    broker = TansuBroker().start()
    bus = KafkaBus(broker.bootstrap, topics=["t"], partitions=1, send_timeout=5.0)
    try:
        await bus.start()
        for i in range(5):
            await bus.publish("t", "h", b"first-%d" % i)
        broker.stop()
        await asyncio.sleep(1.0)
        broker = TansuBroker(port=broker.port).start()  # memory storage: the topic is gone
        for i in range(BEFORE):
            await bus.publish("t", "h", b"before-%d" % i)
            await asyncio.sleep(0.05)
        await bus.recreate_topics()
        for i in range(BEFORE + 5):
            await bus.publish("t", "h", b"after-%d" % i)  # raised BusError before the fix
        values = [r.value for r in await bus.read_back(["t"], seconds=10.0)]
        after = [v for v in values if v.startswith(b"after-")]
        assert after == [b"after-%d" % i for i in range(BEFORE + 5)]
        assert "AlreadyExists" in broker.log.read_text(errors="replace")  # the refusals happened
    finally:
        await bus.stop()
        broker.stop()


async def test_read_back_ends_at_what_the_fetch_serves_after_a_restart() -> None:
    """In that state Tansu's end offset counts the records it stored before the topic was
    created again, but its fetches end before them: a read-back stops there, not at its time
    limit (the restarted decider's rebuild waited out 15 s on qas.decisions)."""
    broker = TansuBroker().start()
    bus = KafkaBus(broker.bootstrap, topics=["t"], partitions=1, send_timeout=5.0)
    try:
        await bus.start()
        await bus.publish("t", "h", b"first")
        broker.stop()
        await asyncio.sleep(1.0)
        broker = TansuBroker(port=broker.port).start()
        for i in range(BEFORE):
            await bus.publish("t", "h", b"before-%d" % i)
        await bus.recreate_topics()
        assert await bus.read_back(["t"], seconds=5.0) == []  # BusError (timed out) before
        await bus.publish("t", "h", b"after")
        # Once a send there goes through, the fetches serve the stored records too.
        values = [r.value for r in await bus.read_back(["t"], seconds=5.0)]
        assert values[-1] == b"after" and len(values) == BEFORE + 1
    finally:
        await bus.stop()
        broker.stop()
