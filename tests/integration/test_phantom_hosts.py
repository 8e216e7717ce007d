"""No phantom hosts, on a real broker (Tansu): a writer inventing 20 000 host ids costs a
`qas decider` neither memory nor /metrics series; a real host whose hardware comes after the
flood is decided; a glob allowlist tracks the hosts it names and no others."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaProducer

from services.bus.kafka import KafkaBus
from services.decider.service import DeciderService
from services.observer.probe import HardwareProbe
from shared.config import DecisionConstants, Settings
from shared.hostfilter import parse_hosts
from shared.messages import MarketEntropy, ScalingDecision, SensorReading, decode, encode
from shared.topics import Topics
from tests.integration.test_kafka_pipeline import read_topic
from tests.support.broker import TansuBroker, free_port

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
FLOOD = 20_000  # distinct host ids, one event each (sensors and entropy alternating)
WARM = 1_000  # unknown-host events before the baseline: code paths and buffers warmed


def _topics() -> Topics:
    p = f"t{uuid.uuid4().hex[:8]}"  # this test's topics on the shared broker
    return Topics(**{name: f"{p}.{name}" for name in Topics.__struct_fields__})


def _scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        page: bytes = r.read()
    return page


def _unknown_events(page: bytes) -> float:
    return sum(float(line.split()[-1]) for line in page.decode().splitlines()
               if line.startswith("qas_unknown_host_events_total{"))  # fmt: skip


def _wait(done, seconds: float, what: str, proc: subprocess.Popen[bytes], err: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not done():
        if proc.poll() is not None:
            raise AssertionError(f"the decider exited ({proc.returncode}): {err.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {seconds:g} s; log: {err.read_text()[-2000:]}")
        time.sleep(0.1)


def _decided(out: Path, host: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    return [d for d in lines if d.get("type") == "decision" and d.get("host_id") == host]


async def _publish(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks=1)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key.encode()) for topic, key, value in records]
        await producer.flush()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _inputs(t: Topics, host: str, now: float) -> list[tuple[str, str, bytes]]:
    reading = SensorReading(event_time=now, host_id=host, cpu_utilization_ratio=0.5,
                            memory_available_bytes=8 << 30, thermal_state=0.2)  # fmt: skip
    entropy = MarketEntropy(event_time=now, host_id=host, value=0.9)
    return [(t.sensors, host, encode(reading)), (t.entropy, host, encode(entropy))]


def _hardware(t: Topics, host: str) -> tuple[str, str, bytes]:
    snap = HardwareProbe(Settings(), host).snapshot()
    return t.hardware, host, encode(snap)


def test_a_flood_of_invented_hosts_costs_no_memory_or_series(
    broker: TansuBroker, tmp_path: Path
) -> None:
    t = _topics()
    settings = tmp_path / "settings.toml"
    settings.write_text("[topics]\n" + "".join(f'{k} = "{getattr(t, k)}"\n'
                                              for k in Topics.__struct_fields__))  # fmt: skip
    port = free_port()
    out, err = tmp_path / "decider.out", tmp_path / "decider.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "decider", "--bootstrap-servers", broker.bootstrap,
             "--host-id", "phantom-decider", "--insecure-unsigned", "--json",
             "--settings", str(settings), "--metrics-port", str(port), "--gc-interval", "0"],
            stdout=o, stderr=e, cwd=ROOT,
        )  # fmt: skip
    try:
        _wait(lambda: "partitions assigned" in err.read_text(), 30, "joining", proc, err)
        # One real host: hardware, then its inputs; decided.
        asyncio.run(_publish(broker.bootstrap, [_hardware(t, "real-1"),
                                                *_inputs(t, "real-1", time.time())]))  # fmt: skip
        _wait(lambda: _decided(out, "real-1"), 20, "real-1's decision", proc, err)

        def flood(first: int, n: int) -> None:
            now = time.time()
            records = []
            for i in range(first, first + n):
                sensors, entropy = _inputs(t, f"flood-{i}", now)
                records.append(sensors if i % 2 else entropy)
            asyncio.run(_publish(broker.bootstrap, records))

        flood(0, WARM)
        _wait(lambda: _unknown_events(_scrape(port)) >= WARM, 20, "the warm-up", proc, err)
        time.sleep(0.5)
        rss_before, page_before = psutil.Process(proc.pid).memory_info().rss, _scrape(port)

        flood(WARM, FLOOD)
        _wait(lambda: _unknown_events(_scrape(port)) >= WARM + FLOOD, 30, "the flood", proc, err)
        rss_after, page_after = psutil.Process(proc.pid).memory_info().rss, _scrape(port)
        print(f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB; /metrics "
              f"{len(page_before)} -> {len(page_after)} bytes after {FLOOD} invented hosts")
        assert rss_after - rss_before <= 10 * 2**20, (rss_before, rss_after)
        assert len(page_after) <= 2 * len(page_before), (len(page_before), len(page_after))
        assert b"flood-" not in page_after
        assert b"qas_tracked_hosts 1.0" in page_after
        assert "inputs for hosts without a hardware record" in err.read_text()  # the warning

        # A real host whose hardware arrives after the flood is decided as any other.
        asyncio.run(_publish(broker.bootstrap, [_hardware(t, "late-1")]))
        asyncio.run(_publish(broker.bootstrap, _inputs(t, "late-1", time.time())))
        _wait(lambda: _decided(out, "late-1"), 20, "late-1's decision", proc, err)
        decision = _decided(out, "late-1")[-1]
        assert decision["inputs"]["fingerprint"] and decision["quantum_state"] != "SUPERPOSITION"  # type: ignore[index]
        assert b"qas_tracked_hosts 2.0" in _scrape(port)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_a_glob_allowlist_tracks_the_hosts_it_names_only(broker: TansuBroker) -> None:
    s = Settings(topics=_topics(), decision=DecisionConstants(max_jitter_seconds=0.0))
    t = s.topics
    bus = KafkaBus(broker.bootstrap, connect_timeout=20, topics=t.all(),
                   compacted_topics=t.compacted())  # fmt: skip
    await bus.start()
    svc = DeciderService(bus, s, "allow-decider", group=f"{t.decisions}-decider",
                         hosts=parse_hosts("rack-*"))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        hosts = ("rack-1", "other-1", "rack-2")
        records = [_hardware(t, h) for h in hosts]
        for h in hosts:
            records += _inputs(t, h, time.time())
        await _publish(broker.bootstrap, records)
        raw = await read_topic(broker.bootstrap, t.decisions, lambda r: {
            decode(x, ScalingDecision).host_id for x in r} >= {"rack-1", "rack-2"})  # fmt: skip
        async with asyncio.timeout(20):
            await svc.until(lambda: svc.stats["not_allowed_events"] >= 3)
        assert sorted(svc.hosts) == ["rack-1", "rack-2"]
        assert "other-1" not in {decode(x, ScalingDecision).host_id for x in raw}
        assert svc.stats["unknown_host_events"] == 0  # refused, not pending a hardware record
    finally:
        stop.set()
        await task
        await bus.stop()
