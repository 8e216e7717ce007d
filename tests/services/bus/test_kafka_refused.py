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
