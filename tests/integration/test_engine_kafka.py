"""The engine side on a real Kafka-protocol broker (Tansu): follow decisions, report feedback,
and the decider tracking the engine's latency objective; plus the example engine end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest

from core.engine import Adopted, DecisionFollower, EngineClient
from services.bus.kafka import KafkaBus
from services.decider.service import DeciderService
from services.observer.probe import HardwareProbe
from services.observer.service import ObserverService
from shared.config import DecisionConstants, Settings, Topics
from shared.decision import decide
from shared.messages import PriorState, ScalingDecision, encode
from tests.support.broker import TansuBroker
from tests.support.factories import inputs_for, reference_host

ROOT = Path(__file__).resolve().parents[2]
HOST = "engine-host"


def _settings() -> Settings:
    p = f"e{uuid.uuid4().hex[:8]}"  # isolate each test's topics on the shared broker
    topics = Topics(**{name: f"{p}.{name}" for name in Topics.__struct_fields__})
    return Settings(
        topics=topics,
        sensor_interval_seconds=0.2,
        decision=DecisionConstants(
            max_jitter_seconds=0.0,
            tolerance=0.0,
            smoothing_seconds=0.0,
            scale_down_window_seconds=0.0,
        ),
    )


def _bus(broker: TansuBroker, s: Settings) -> KafkaBus:
    return KafkaBus(broker.bootstrap, connect_timeout=20, topics=s.topics.all(),
                    compacted_topics=s.topics.compacted())  # fmt: skip


class Rig:
    """QAS's observer and decider on the broker, and an engine client on the same topics."""

    def __init__(self, s: Settings, bus: KafkaBus, client: EngineClient, decider: DeciderService):
        self.s, self.bus, self.client, self.decider = s, bus, client, decider

    async def until(self, cond: Callable[[], bool], timeout: float = 40.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.05)

    async def engine(self, latency_ms: Callable[[int], float], stop: asyncio.Event) -> None:
        """An engine whose batches take ``latency_ms(batch size)``; it records, not sleeps."""
        while not stop.is_set():
            size = self.client.sizer.size
            self.client.record_batch(latency_ms(size) / 1000, size)
            await asyncio.sleep(0.02)


@pytest.fixture
async def rig(broker: TansuBroker) -> AsyncIterator[Rig]:
    s = _settings()
    bus = _bus(broker, s)
    await bus.start()
    stop = asyncio.Event()
    decider = DeciderService(bus, s, HOST, group=f"{s.topics.decisions}-decider")
    observer = ObserverService(bus, HardwareProbe(s, HOST), s)
    client = EngineClient(bus, s, HOST, latency_objective_ms=25.0, feedback_interval_seconds=0.3,
                          stop=stop)  # fmt: skip
    tasks = [asyncio.create_task(x.run(stop)) for x in (decider, observer)]
    tasks.append(asyncio.create_task(client.run()))
    try:
        yield Rig(s, bus, client, decider)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.stop()


pytestmark = pytest.mark.kafka


async def test_a_slow_engine_drives_batch_and_factor_down_with_reasons(rig: Rig) -> None:
    c = rig.client
    await rig.until(lambda: bool(c.adopted))
    first = c.adopted[0].decision
    stop = asyncio.Event()
    full = first.batch_size
    # p99 = 5 ms + 95 ms at the first batch: 4x the 25 ms objective, growing with the batch
    task = asyncio.create_task(rig.engine(lambda b: 5.0 + 95.0 * b / full, stop))
    try:
        await rig.until(lambda: c.sizer.size <= full * 0.25)
    finally:
        stop.set()
        await task
    fed = [a.decision for a in c.adopted if any("Engine p99" in r for r in a.decision.reasons)]
    assert fed, [a.decision.reasons for a in c.adopted]
    text = " ".join(fed[0].reasons)
    assert "above its 25 ms objective" in text and "Cost model" in text and f"batch {full} ->" in text
    # the cost model found a batch that meets the objective: the factor is not cut for it
    assert min(d.scaling_factor for d in fed) == first.scaling_factor
    sizes = [a.decision.batch_size for a in c.adopted]
    assert sizes == sorted(sizes, reverse=True)  # never up while the objective was missed
    assert rig.decider.stats[f"consumed:{rig.s.topics.feedback}"] >= 1  # one report: one step
    assert c.reports and c.reports[-1].latency_objective_ms == 25.0
    assert all(a.latency_seconds < 30 for a in c.adopted)  # adopted, with its adoption time


async def test_a_fast_engine_lets_the_factor_follow_the_market(rig: Rig) -> None:
    c = rig.client
    await rig.until(lambda: bool(c.adopted))
    stop = asyncio.Event()
    task = asyncio.create_task(rig.engine(lambda b: 2.0, stop))
    try:
        await rig.until(lambda: len(c.reports) >= 2)
        await c.publish_inputs(entropy=0.95, profit=0.5)
        await rig.until(lambda: c.current is not None and c.current.decision.scaling_factor >= 1.2)
    finally:
        stop.set()
        await task
    d = c.current.decision  # type: ignore[union-attr]
    assert "market_entropy" in d.triggers
    assert not any("engine latency" in r or "Engine p99" in r for r in d.reasons)
    assert d.batch_size == c.adopted[0].decision.batch_size  # no cap: the seed's table applies


async def test_a_decision_the_engine_cannot_verify_is_not_adopted(broker: TansuBroker) -> None:
    s = _settings()
    bus = _bus(broker, s)
    await bus.start()
    try:
        now = time.time()
        d, _ = decide(inputs_for(reference_host(), 0.5, 0.2, 0.5), PriorState(), host_id=HOST,
                      now=now, c=s.decision)  # fmt: skip
        assert d is not None
        forged = msgspec.structs.replace(d, batch_size=1, decision_id="forged", event_time=now + 1)
        genuine = msgspec.structs.replace(d, signature="trusted")
        await bus.publish(s.topics.decisions, HOST, encode(genuine))
        await bus.publish(s.topics.decisions, HOST, encode(forged))  # newer, but unverifiable

        def verify(x: ScalingDecision) -> str | None:
            return None if x.signature == "trusted" else "no valid signature"

        f = DecisionFollower(bus, s, HOST, verify=verify)
        got: list[Adopted] = []

        async def first() -> None:
            async for a in f:
                got.append(a)
                f.stop.set()

        await asyncio.wait_for(first(), 40)
        assert [a.decision.decision_id for a in got] == [genuine.decision_id]
        assert f.adopter.refused.get("unverified") == 1
        assert f.adopter.last_refusal == "unverified: no valid signature"
    finally:
        await bus.stop()


def _engine(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "examples/trading_engine.py", "--json", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)  # fmt: skip


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_example_engine_on_kafka_adopts_and_feeds_back(broker: TansuBroker) -> None:
    host = f"engine-{uuid.uuid4().hex[:6]}"
    qas = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--bootstrap-servers",
                            broker.bootstrap, "--no-metrics", "--host-id", host, "--json",
                            "--duration", "45"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(4)  # QAS's groups join first
        r = _engine("--bootstrap-servers", broker.bootstrap, "--host-id", host, "--duration", "12",
                    "--symbols", "8", "--latency-objective-ms", "0.5", "--warmup", "2")  # fmt: skip
    finally:
        qas.terminate()
        out, err = qas.communicate(timeout=30)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = _lines(r.stdout)[-1]
    assert summary["type"] == "summary" and summary["mode"] == "qas"
    assert summary["adopted"] >= 1 and summary["feedback_reports"] >= 1, r.stdout[-3000:]  # type: ignore[operator]
    decisions = [x for x in _lines(out) if x.get("type") == "decision" and x["host_id"] == host]
    reasons = " ".join(str(r) for d in decisions for r in d["reasons"])  # type: ignore[attr-defined]
    assert "above its 0.5 ms objective" in reasons  # the decider's reasons show the feedback
    assert "Traceback" not in err


def test_example_engine_on_the_embedded_bus_and_without_qas() -> None:
    r = _engine("--duration", "6", "--symbols", "8", "--latency-objective-ms", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = _lines(r.stdout)
    summary = lines[-1]
    assert summary["adopted"] >= 1 and summary["feedback_reports"] >= 1  # type: ignore[operator]
    assert any(x["type"] == "adopted" for x in lines)
    assert summary["store_error_bound"] is not None and summary["ticks"] > 0  # type: ignore[operator]
    plain = _lines(_engine("--mode", "float64", "--ticks", "2000", "--symbols", "8").stdout)[-1]
    naive = _lines(_engine("--mode", "float16-naive", "--ticks", "2000", "--symbols", "8").stdout)[
        -1
    ]
    assert plain["ticks"] == naive["ticks"] >= 2000 and plain["adopted"] == 0
    assert plain["pnl_bp"] != naive["pnl_bp"]  # float16 history changes the trading result
