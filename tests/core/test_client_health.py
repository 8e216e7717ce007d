"""No silent death: failures are logged at ERROR, counted, restarted where safe and raised to the
engine where not; current carries its age; the reporter survives a non-finite error bound."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from core.engine import BackgroundClient, ClientFailed, EngineClient, EngineStore, FeedbackReporter
from core.engine.follow import Adopted
from services.bus.memory import MemoryBus, MemoryConsumer
from shared.config import Settings
from shared.messages import FLOAT_MAX, FeedbackReport, decode, encode
from tests.core.test_engine_client import NOW, decision


class FlakyBus(MemoryBus):
    """A bus whose first ``fail`` feedback publishes raise."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        if topic == Settings().topics.feedback and self.fail > 0:
            self.fail -= 1
            raise ConnectionError("broker away")
        await super().publish(topic, key, value)


async def until(cond: object, what: str) -> None:
    for _ in range(2000):  # a hang guard, not a timing assertion
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never: {what}")


async def test_a_failing_feedback_task_is_logged_counted_and_restarted_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = FlakyBus(fail=3)
    waits: list[int] = []

    def backoff(n: int) -> float:
        waits.append(n)
        return 0.0

    c = EngineClient(bus, host_id="h", feedback_interval_seconds=0.01, restart_backoff=backoff)
    caplog.set_level(logging.ERROR, "qas.engine")
    run = asyncio.create_task(c.run())
    c.record_batch(0.002, 10)
    await until(lambda: c.failures == 1, "first failure")
    assert not c.healthy and isinstance(c.last_error, ConnectionError)
    assert any(r.levelno == logging.ERROR and "feedback failed" in r.getMessage()
               for r in caplog.records)  # fmt: skip

    def engine_goes_on() -> bool:  # restartable: the engine is not interrupted
        c.record_batch(0.002, 10)
        return len(c.reports) == 1

    await until(engine_goes_on, "a report after the restarts")
    assert c.failures == 3 and waits == [1, 2, 3] and c.healthy
    c.close()
    await run


async def test_a_dead_follower_is_raised_by_the_engines_next_call() -> None:
    bus, s = MemoryBus(), Settings()
    c = EngineClient(bus, s, "h", clock=lambda: NOW + 1)
    boom = RuntimeError("engine callback bug")

    def on_adopt(a: Adopted) -> None:
        raise boom

    c.on_adopt = on_adopt
    await bus.publish(s.topics.decisions, "h", encode(decision()))
    run = asyncio.create_task(c.run())
    await until(lambda: c.fatal is not None, "the follower failed")
    assert c.failures == 1 and c.last_error is boom and not c.healthy
    with pytest.raises(ClientFailed, match="stopped adopting decisions") as err:
        c.record_batch(0.001, 1)
    assert err.value.__cause__ is boom
    with pytest.raises(ClientFailed):
        _ = c.current
    c.close()
    await run


class FlakyConsumerBus(MemoryBus):
    """A bus whose consumers' first ``fail`` reads raise."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail

    def consumer(self, topics: Sequence[str], group: str) -> MemoryConsumer:
        bus = self
        inner = super().consumer(topics, group)
        read = inner.getmany

        async def getmany(*args: Any, **kwargs: Any) -> Any:
            if bus.fail > 0:
                bus.fail -= 1
                raise ConnectionError("broker away")
            return await read(*args, **kwargs)

        inner.getmany = getmany  # type: ignore[method-assign]
        return inner


async def test_a_failing_bus_read_restarts_the_follower_which_then_adopts() -> None:
    bus, s = FlakyConsumerBus(fail=2), Settings()
    waits: list[int] = []

    def backoff(n: int) -> float:
        waits.append(n)
        return 0.0

    c = EngineClient(bus, s, "h", clock=lambda: NOW + 1, restart_backoff=backoff)
    run = asyncio.create_task(c.run())
    await until(lambda: c.failures == 2, "two failed reads")
    assert not c.healthy and c.fatal is None and isinstance(c.last_error, ConnectionError)
    c.record_batch(0.001, 1)  # restartable: the engine goes on
    await bus.publish(s.topics.decisions, "h", encode(decision()))
    await until(lambda: len(c.adopted) == 1, "adopted after the restart")
    assert c.healthy and waits == [1, 2] and c.current is not None
    c.close()
    await run


def test_current_carries_its_age_and_flags_a_stale_decision() -> None:
    t = [NOW + 1]
    c = EngineClient(MemoryBus(), host_id="h", clock=lambda: t[0], stale_after_seconds=60)
    assert c.current is None
    c._adopted(c.follower.adopter.consider(decision()))  # type: ignore[arg-type]
    now = c.current
    assert now is not None and now.age_seconds == pytest.approx(1.0) and not now.stale
    t[0] = NOW + 61
    later = c.current
    assert later is not None and later.age_seconds == pytest.approx(61.0) and later.stale
    assert later.decision == now.decision


def test_adopted_and_reports_are_bounded_rings() -> None:
    c = EngineClient(MemoryBus(), host_id="h", adopted_kept=3, reports_kept=2)
    for i in range(5):
        c._adopted(Adopted(msgspec.structs.replace(decision(), decision_id=f"d{i}"), NOW))
    assert [a.decision.decision_id for a in c.adopted] == ["d2", "d3", "d4"]
    assert c.adopted.maxlen == 3 and c.reports.maxlen == 2


async def test_the_reporter_survives_a_non_finite_store_error_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = EngineClient(MemoryBus(), host_id="h", store_budget_bytes=1 << 20)
    c.store = EngineStore(1 << 20, tier=16, lossless_first=False)  # lossy, as a decision may be
    c.store.append("px", [1.0, -2.0, 0.0, 3.0] * 100)  # prices <= 0: relative error unbounded
    c.store.flush()
    assert c.store.error_bound() == math.inf
    c.record_batch(0.001, 1)
    caplog.set_level(logging.WARNING, "qas.engine")
    report = await c.send_feedback()
    assert report.store_error_bound == FLOAT_MAX
    assert decode(encode(report), FeedbackReport) == report
    assert c.reporter.clamped_error_bounds == 1 and "not a finite number" in str(
        c.reporter.last_clamp_reason
    )
    assert any("unbounded" in r.getMessage() for r in caplog.records)
    r = FeedbackReporter("h", 25.0, clock=lambda: NOW, rss=lambda: 1)
    assert r.report(store_error_bound=math.nan).store_error_bound == FLOAT_MAX


@pytest.mark.parametrize(("seconds", "items"), [(math.nan, 1), (-1.0, 1), (0.1, -1), ("1", 1)])
def test_record_batch_refuses_bad_measurements_at_the_call(seconds: object, items: object) -> None:
    c = EngineClient(MemoryBus(), host_id="h")
    with pytest.raises((ValueError, TypeError), match="record_batch"):
        c.record_batch(seconds, items)  # type: ignore[arg-type]
    assert c.reporter.batches == 0
    bg = BackgroundClient(embedded_qas=False)  # the thread form refuses it on the caller's thread
    with pytest.raises((ValueError, TypeError), match="record_batch"):
        bg.record_batch(seconds, items)  # type: ignore[arg-type]
