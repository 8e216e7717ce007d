"""The three services on a real Kafka-protocol broker (Tansu, started by the suite)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.applier.service import ApplierService
from services.bus.kafka import KafkaBus
from services.decider.service import DeciderService
from services.observer.probe import HardwareProbe
from services.observer.service import ObserverService
from shared.config import DecisionConstants, Settings, Topics
from shared.messages import (
    ApplyResult,
    DeadLetter,
    MarketEntropy,
    ProfitPotential,
    ScalingDecision,
    decode,
    encode,
)
from tests.support.broker import TansuBroker
from tests.support.factories import reference_host, snapshot

pytestmark = pytest.mark.kafka


def _settings() -> Settings:
    p = f"t{uuid.uuid4().hex[:8]}"  # isolate each test's topics on the shared broker
    topics = Topics(**{name: f"{p}.{name}" for name in Topics.__struct_fields__})
    return Settings(
        topics=topics,
        sensor_interval_seconds=0.2,
        decision=DecisionConstants(max_jitter_seconds=0.0, tolerance=0.0, smoothing_seconds=0.0),
    )


def _bus(broker: TansuBroker, s: Settings) -> KafkaBus:
    t = s.topics
    return KafkaBus(
        broker.bootstrap,
        connect_timeout=20,
        topics=[t.hardware, t.sensors, t.entropy, t.profit, t.decisions, t.applied, t.dlq],
        compacted_topics=[t.hardware],
    )


async def read_topic(
    bootstrap: str, topic: str, until: Callable[[list[bytes]], bool], timeout: float = 30.0
) -> list[bytes]:
    """Read a topic from the beginning (no group) until a condition holds."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or {0, 1, 2}
        tps = [TopicPartition(topic, p) for p in parts]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out: list[bytes] = []
        async with asyncio.timeout(timeout):
            while not until(out):
                batch = await c.getmany(timeout_ms=200)
                out += [m.value for msgs in batch.values() for m in msgs]
        return out
    finally:
        await c.stop()


@pytest.fixture
async def pipeline(broker: TansuBroker) -> AsyncIterator[tuple[Settings, KafkaBus, list]]:  # type: ignore[type-arg]
    s = _settings()
    bus = _bus(broker, s)
    await bus.start()
    stop = asyncio.Event()
    host = "kafka-test-host"
    observer = ObserverService(bus, HardwareProbe(s, host), s)
    decider = DeciderService(bus, s, host, group=f"{s.topics.decisions}-decider")
    applier = ApplierService(bus, s, host, group=f"{s.topics.decisions}-applier")
    services = [observer, decider, applier]
    tasks = [asyncio.create_task(svc.run(stop)) for svc in services]
    try:
        yield s, bus, services
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.stop()


async def test_decisions_and_apply_results_flow_in_order_per_host(pipeline, broker) -> None:  # type: ignore[no-untyped-def]
    s, bus, _ = pipeline
    assert bus.connected
    # The engine's market events, for two hosts; one host's decisions must stay in order. The
    # decider decides once per batch from the newest inputs, so each step waits for its decision.
    def enough_for(n: int):  # type: ignore[no-untyped-def]
        def enough(raw: list[bytes]) -> bool:
            hosts = [decode(r, ScalingDecision).host_id for r in raw]
            return hosts.count("engine-a") >= n and hosts.count("engine-b") >= n

        return enough

    for host in ("engine-a", "engine-b"):  # the decider tracks hosts with a hardware record
        await bus.publish(s.topics.hardware, host, encode(snapshot(reference_host(), host)))
    for i, (e, p) in enumerate([(0.5, 0.5), (0.9, 0.5), (0.5, 0.95), (0.2, 0.1)]):
        for host in ("engine-a", "engine-b"):
            now = time.time()
            entropy = MarketEntropy(event_time=now, host_id=host, value=e)
            profit = ProfitPotential(event_time=now, host_id=host, value=p)
            await bus.publish(s.topics.entropy, host, encode(entropy))
            await bus.publish(s.topics.profit, host, encode(profit))
        if i < 3:  # the last one's scale-down may be held by the stabiliser's window
            await read_topic(broker.bootstrap, s.topics.decisions, enough_for(i + 1))
    enough = enough_for(3)

    decisions = [
        decode(r, ScalingDecision)
        for r in await read_topic(broker.bootstrap, s.topics.decisions, enough)
    ]
    for host in ("engine-a", "engine-b"):
        seqs = [d.sequence for d in decisions if d.host_id == host]
        assert seqs == sorted(seqs) and seqs[0] == 1, seqs
        factors = [d.scaling_factor for d in decisions if d.host_id == host]
        assert max(factors) > 1.2  # the high-entropy and high-profit events took effect

    wanted = {d.decision_id for d in decisions}
    applied = [
        decode(r, ApplyResult)
        for r in await read_topic(
            broker.bootstrap,
            s.topics.applied,
            lambda raw: wanted <= {decode(r, ApplyResult).decision_id for r in raw},
        )
    ]
    for host in ("engine-a", "engine-b"):
        order = [a.decision_id for a in applied if a.host_id == host]
        expected = [d.decision_id for d in decisions if d.host_id == host]
        assert [x for x in order if x in expected] == expected  # same order as decided
    assert {a.status for a in applied} <= {"applied", "skipped"}


async def test_malformed_message_lands_in_dlq_and_processing_continues(pipeline, broker) -> None:  # type: ignore[no-untyped-def]
    s, bus, (_, decider, _) = pipeline
    await bus.publish(s.topics.hardware, "dlq-host", encode(snapshot(reference_host(), "dlq-host")))
    await bus.publish(
        s.topics.entropy, "dlq-host", b'{"event_time": 1, "host_id": "dlq-host", "value": "high"}'
    )
    await bus.publish(
        s.topics.entropy,
        "dlq-host",
        encode(MarketEntropy(event_time=time.time(), host_id="dlq-host", value=0.95)),
    )
    letters = await read_topic(broker.bootstrap, s.topics.dlq, lambda raw: len(raw) >= 1)
    letter = decode(letters[0], DeadLetter)
    assert letter.topic == s.topics.entropy and b'"high"' in letter.payload
    assert "Expected `float`" in letter.reason and letter.service == "decider"
    later = await read_topic(
        broker.bootstrap,
        s.topics.decisions,
        lambda raw: any(decode(r, ScalingDecision).host_id == "dlq-host" for r in raw),
    )
    d = next(
        decode(r, ScalingDecision)
        for r in later
        if decode(r, ScalingDecision).host_id == "dlq-host"
    )
    assert d.inputs.market_entropy == 0.95 and decider.stats["dead_letters"] == 1


async def test_any_kafka_client_reads_decisions_as_json(pipeline, broker) -> None:  # type: ignore[no-untyped-def]
    s, _, _ = pipeline
    await read_topic(broker.bootstrap, s.topics.decisions, lambda raw: len(raw) >= 1)
    from kafka import KafkaConsumer  # kafka-python: a different client implementation

    def read() -> list[dict[str, object]]:
        c = KafkaConsumer(
            s.topics.decisions,
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        try:
            out: list[dict[str, object]] = []
            deadline = time.monotonic() + 20
            while not out and time.monotonic() < deadline:
                for msgs in c.poll(timeout_ms=500).values():
                    out += [json.loads(m.value) for m in msgs]
            return out
        finally:
            c.close()

    records = await asyncio.to_thread(read)
    assert records and {"decision_id", "scaling_factor", "reasons", "host_id"} <= set(records[0])


async def test_consumer_restart_resumes_from_committed_offset(broker: TansuBroker) -> None:
    s = _settings()
    bus = _bus(broker, s)
    await bus.start()
    topic, group = s.topics.entropy, f"{s.topics.entropy}-resume"
    try:
        for i in range(6):
            await bus.publish(topic, "h", b"%d" % i)
        c = bus.consumer([topic], group)
        await c.start()
        got: list = []  # type: ignore[type-arg]
        async with asyncio.timeout(30):
            while len(got) < 6:
                got += await c.getmany(timeout=0.5)
        await c.commit(got[:4])  # processed and committed 0..3; 4 and 5 were in flight
        await c.stop()

        for i in range(6, 8):
            await bus.publish(topic, "h", b"%d" % i)
        c2 = bus.consumer([topic], group)
        await c2.start()
        again: list = []  # type: ignore[type-arg]
        async with asyncio.timeout(30):
            while len(again) < 4:
                again += await c2.getmany(timeout=0.5)
        await c2.commit(again)
        await c2.stop()
        assert [r.value for r in again] == [b"4", b"5", b"6", b"7"]  # no loss, no re-read of 0..3
    finally:
        await bus.stop()


async def test_unreachable_broker_gives_up_with_a_clear_error() -> None:
    from services.bus.base import BusError
    from tests.support.broker import free_port

    bus = KafkaBus(f"127.0.0.1:{free_port()}", connect_timeout=1.0, topics=["x"])
    with pytest.raises(BusError, match=r"cannot reach Kafka at 127\.0\.0\.1:\d+ after 1 s"):
        await bus.start()


async def test_idempotent_producer_requested_and_fallback_reported(broker: TansuBroker) -> None:
    bus = KafkaBus(broker.bootstrap, connect_timeout=10)
    assert bus.producer_options(True)["enable_idempotence"] is True
    assert bus.producer_options(True)["acks"] == "all"
    await bus.start()
    try:
        # Tansu answers aiokafka's InitProducerId v0 with UNKNOWN_SERVER_ERROR: we fall back
        # and say so; a full Kafka broker keeps idempotence on.
        assert bus.idempotent is False and bus.connected
    finally:
        await bus.stop()
