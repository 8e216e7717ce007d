"""`qas run` hands decisions to its applier in process and still publishes them."""

from __future__ import annotations

import asyncio
import time

from app.runtime import InProcessApplier, JsonLines, Options, run_services
from services.applier.service import ApplierService
from services.bus.memory import MemoryBus
from shared.config import DecisionConstants, Settings
from shared.messages import MarketEntropy, ScalingDecision, decode, encode
from tests.support.factories import reference_host, snapshot


class Sink(JsonLines):
    def __init__(self) -> None:
        self.decisions: list[ScalingDecision] = []
        self.results: list[str] = []
        self.counts = {"decision": 0, "applied": 0}

    def emit(self, kind: str, msg, extra=None) -> None:  # type: ignore[no-untyped-def, override]
        (self.decisions if kind == "decision" else self.results).append(msg)


async def test_decisions_reach_the_applier_in_process_and_are_still_published() -> None:
    settings = Settings(decision=DecisionConstants(tolerance=0.0, max_jitter_seconds=0.0))
    opts = Options(settings=settings, host_id="h1")
    bus, stop, sink = MemoryBus(), asyncio.Event(), Sink()
    t = settings.topics
    reader = bus.consumer([t.decisions], "engine")
    await reader.start()
    task = asyncio.create_task(
        run_services(opts, ("decider", "applier"), bus=bus, stop=stop, sink=sink)
    )
    await bus.publish(
        t.hardware, "h1", encode(snapshot(reference_host(), host="h1", t=time.time()))
    )
    published: list[ScalingDecision] = []
    async with asyncio.timeout(10):
        # One at a time: the decider decides once per batch, from the newest of its inputs.
        for i in range(5):
            msg = MarketEntropy(event_time=time.time(), host_id="h1", value=0.1 + 0.2 * i)
            await bus.publish(t.entropy, "h1", encode(msg))
            while len(sink.decisions) < i + 1:
                await asyncio.sleep(0.02)
        while len(sink.results) < len(sink.decisions):
            await asyncio.sleep(0.02)
        while len(published) < len(sink.decisions):
            published += [
                decode(r.value, ScalingDecision) for r in await reader.getmany(timeout=0.05)
            ]
    stop.set()
    stats = await task
    assert [d.decision_id for d in published] == [d.decision_id for d in sink.decisions]
    assert [r.decision_id for r in sink.results] == [d.decision_id for d in sink.decisions]  # type: ignore[attr-defined]
    assert stats["applier"]["in_process"] == len(sink.decisions)
    assert not any(k.endswith(t.decisions) for k in stats["applier"])  # not read back from the bus
    assert "applied" in {r.status for r in sink.results}  # type: ignore[attr-defined]


def test_only_the_in_process_applier_stops_reading_decisions_from_the_bus() -> None:
    assert "decisions" in ApplierService(MemoryBus(), Settings(), "h").handlers()  # qas applier
    assert "decisions" not in InProcessApplier(MemoryBus(), Settings(), "h").handlers()
