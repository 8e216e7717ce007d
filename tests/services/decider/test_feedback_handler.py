"""DeciderService.on_feedback: the newest report per host triggers a decision that tracks it."""

from __future__ import annotations

import msgspec

from services.bus.memory import MemoryBus
from shared.messages import FeedbackReport, ScalingDecision, encode
from tests.services.decider.test_service import TOPICS, read, running, send
from tests.support.factories import reference_host, sensors, snapshot


def report(t: float, p99: float, batch: int) -> FeedbackReport:
    return FeedbackReport(event_time=t, host_id="h1", interval_seconds=1.0, latency_p50_ms=p99 / 2,
                          latency_p99_ms=p99, latency_objective_ms=25.0,
                          resident_memory_bytes=1 << 30, batch_size=batch)  # fmt: skip


async def test_feedback_is_folded_in_and_an_older_report_is_ignored() -> None:
    bus, now = MemoryBus(), [1000.0]
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.hardware, encode(snapshot(reference_host())))
        await send(bus, svc, TOPICS.sensors, encode(sensors()))
        n = svc.stats["decisions"]
        first = (await read(bus, TOPICS.decisions, ScalingDecision, n))[-1][1]
        now[0] = 1001.0
        await send(bus, svc, TOPICS.feedback, encode(report(1000.5, 50.0, first.batch_size)))
        await send(bus, svc, TOPICS.feedback, encode(report(1000.2, 10.0, first.batch_size)))
        assert svc.stats["decisions"] == n + 1  # the new report decided once, the older nothing
        decisions = [d for _, d in await read(bus, TOPICS.decisions, ScalingDecision, n + 1)]
        assert svc.stats["feedback_stale"] == 1
        fed = decisions[-1]
        # one batch size seen: the cost model takes p99 as proportional, aimed at 0.9 * 25 ms
        assert fed.batch_size == int(0.9 * 25.0 / (50.0 / first.batch_size) + 1e-9)
        assert fed.prior.cost_points is msgspec.UNSET
        assert fed.inputs.feedback == report(1000.5, 50.0, first.batch_size)
        assert any("Engine p99 50.0 ms above its 25 ms objective" in r for r in fed.reasons)
