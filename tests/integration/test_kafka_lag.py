"""Consumer lag from the real Kafka client against a real broker (Tansu)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.bus.kafka import KafkaBus
from tests.support.broker import TansuBroker

pytestmark = pytest.mark.kafka


async def test_kafka_consumer_lag_is_records_behind_per_partition(broker: TansuBroker) -> None:
    topic = f"lag{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(broker.bootstrap, connect_timeout=20, topics=[topic], compacted_topics=[])
    await bus.start()
    consumer = bus.consumer([topic], f"g{uuid.uuid4().hex[:8]}")
    try:
        for i in range(10):
            await bus.publish(topic, "one-key", str(i).encode())  # one key: one partition
        await consumer.start()
        got: list[object] = []
        async with asyncio.timeout(30):
            while not got:
                got = list(await consumer.getmany(timeout=0.5, max_records=4))
        behind = await consumer.lag()
        assert sorted(behind.values()) == [0] * (len(behind) - 1) + [10 - len(got)]
        async with asyncio.timeout(30):
            while len(got) < 10:
                got += await consumer.getmany(timeout=0.5)
        assert set((await consumer.lag()).values()) == {0}
    finally:
        await consumer.stop()
        await bus.stop()
