"""A corpus of >= 1000 malformed records on every input topic, interleaved with valid market
events, through the decider and applier on a real broker: every malformed record is
dead-lettered (or counted as dropped), no service ends, the valid events still give decisions."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
from kafka import KafkaProducer

from services.applier.service import ApplierService
from services.decider.service import DeciderService
from shared.messages import encode
from tests.integration.test_kafka_pipeline import _bus, _settings
from tests.support.broker import TansuBroker
from tests.support.factories import reference_host, snapshot

pytestmark = pytest.mark.kafka

HOST = "fuzz-host"


def corpus(rng: random.Random) -> list[bytes]:
    """Malformed values of every kind the issue lists, a few hundred distinct ones."""
    base = {"event_time": 1.0, "host_id": HOST, "value": 0.5}
    out: list[bytes] = [
        b"", b"\x00", b"\xff\xfe\xfd", b"null", b"[]", b"{}", b"1", b'"x"',
        b'{"event_time":1,"host_id":"\xff\xfe","value":0.5}',
        b'{"x":' + b"[" * 5000 + b"]" * 5000 + b',"event_time":1,"host_id":"h","value":0.5}',
        b'{"x":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}",
        b'{"event_time":NaN,"host_id":"h","value":0.5}',
        b'{"event_time":1,"host_id":"h","value":Infinity}',
        b'{"event_time":1e999,"host_id":"h","value":0.5}',
        json.dumps({**base, "host_id": "h" * 300_000}).encode(),  # a huge string
        b'{"event_time":1,"host_id":"h","value":0.5,"x":"' + b"a" * 1_000_000 + b'"}',  # 1 MB
        b'{"event_time":1,"host_id":"h","value":0.5,"x":"' + b"a" * 2_000_000 + b'"}',  # 2 MB
    ]  # fmt: skip
    for field in base:  # missing fields, wrong types
        out.append(json.dumps({k: v for k, v in base.items() if k != field}).encode())
        for wrong in ("s", [1], {"a": 1}, None, True, -1e308):
            out.append(json.dumps({**base, field: wrong}).encode())
    while len(out) < 300:  # random binary and cut-off JSON
        valid = json.dumps({**base, "value": rng.random()}).encode()
        out.append(rng.randbytes(rng.randint(1, 200)))
        out.append(valid[: rng.randint(1, len(valid) - 1)])
    return out


async def test_a_thousand_malformed_records_on_every_input_topic() -> None:
    broker = TansuBroker().start()
    s = _settings()
    t = s.topics
    inputs = [t.hardware, t.sensors, t.entropy, t.profit, t.ticks, t.decisions]
    bus = _bus(broker, s)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    producer = None
    try:
        await bus.start()
        decider = DeciderService(bus, s, HOST, group="fuzz-decider")
        applier = ApplierService(bus, s, HOST, group="fuzz-applier")
        tasks = [asyncio.create_task(svc.run(stop)) for svc in (decider, applier)]
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=4 << 20,
                                 linger_ms=5)  # fmt: skip
        rng = random.Random(11)
        bad = corpus(rng)
        sent: dict[str, int] = {topic: 0 for topic in inputs}
        valid = 0
        n = 0
        # The host's hardware record: the decider decides only for hosts that sent one.
        producer.send(t.hardware, encode(snapshot(reference_host(), HOST)), key=HOST.encode())
        while n < 1020:
            for topic in inputs:
                value = bad[n % len(bad)]
                producer.send(topic, value, key=HOST.encode())
                sent[topic] += 1
                n += 1
            msg = {"event_time": time.time(), "host_id": HOST, "value": rng.random()}
            producer.send(t.entropy, json.dumps(msg).encode(), key=HOST.encode())
            valid += 1
        await asyncio.to_thread(producer.flush, 60)

        consumers = {"decider": [t.hardware, t.sensors, t.entropy, t.profit, t.ticks],
                     "applier": [t.decisions, t.hardware, t.sensors, t.ticks]}  # fmt: skip
        consumers["applier"] = [x for x in consumers["applier"] if x in applier.routes()]
        svcs = {"decider": decider, "applier": applier}
        async with asyncio.timeout(120):
            for name, topics in consumers.items():
                for topic in topics:
                    extra = (valid if topic == t.entropy and name == "decider" else 0) + (
                        1 if topic == t.hardware else 0)
                    await svcs[name].drained(topic, sent[topic] + extra)
        assert not any(task.done() for task in tasks), "a service ended"
        for name, topics in consumers.items():
            svc = svcs[name]
            bad_seen = sum(sent[x] for x in topics)
            handled = sum(svc.stats[f"handled:{x}"] for x in topics)
            consumed = sum(svc.stats[f"consumed:{x}"] for x in topics)
            letters = svc.stats["dead_letters"]
            # Every record handled was either consumed or dead-lettered, and every malformed one
            # was dead-lettered (a dead letter the broker refused is still counted).
            assert letters == handled - consumed, (name, dict(svc.stats))
            assert letters == bad_seen, (name, letters, bad_seen)
        assert decider.stats["decisions"] > 0 and decider.stats[f"consumed:{t.entropy}"] >= valid
        print(f"fuzz: {n} malformed records on {len(inputs)} topics, {valid} valid events; "
              f"dead letters decider {decider.stats['dead_letters']}, applier "
              f"{applier.stats['dead_letters']}; decisions {decider.stats['decisions']}")
    finally:
        stop.set()
        if producer is not None:
            producer.close(timeout=2)
        for task in tasks:
            try:
                await asyncio.wait_for(task, 15)
            except (TimeoutError, Exception):  # reported by the assertions above
                pass
        await bus.stop()
        broker.stop()
