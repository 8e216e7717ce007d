"""The jitter wait (apply_after_seconds) never holds the applier: other records and a stop are
served meanwhile, a newer decision supersedes a waiting one, and the waiting decision's record
stays uncommitted until it is answered (a restart then re-reads it, and what was already
answered is read back from qas.applied, so nothing is enacted twice)."""

from __future__ import annotations

import asyncio
import time

import msgspec

from services.applier.service import ApplierService, applier_group
from services.bus.memory import MemoryBus
from shared.messages import ApplyResult, ScalingDecision, decode, encode
from tests.services.applier.test_service import S, decision

T = S.topics


def waiting(d: ScalingDecision, seconds: float, n: int) -> ScalingDecision:
    return msgspec.structs.replace(d, apply_after_seconds=seconds, sequence=n,
                                   decision_id=f"h-{n}", event_time=time.time())  # fmt: skip


async def results(bus: MemoryBus, n: int, group: str = "reader") -> list[ApplyResult]:
    reader = bus.consumer([T.applied], group)
    await reader.start()
    out: list[ApplyResult] = []
    async with asyncio.timeout(5):
        while len(out) < n:
            out += [decode(r.value, ApplyResult) for r in await reader.getmany(timeout=0.05)]
    return out


async def test_a_newer_decision_supersedes_one_waiting_out_its_jitter() -> None:
    bus, stop = MemoryBus(), asyncio.Event()
    svc = ApplierService(bus, S, "h")
    task = asyncio.create_task(svc.run(stop))
    slow = waiting(decision(p=0.9), 1e6, 1)  # capped at 30 s
    await bus.publish(T.decisions, "h", encode(slow))
    async with asyncio.timeout(5):
        await svc.drained(T.decisions, 1)
    assert "h" in svc._pending and svc.stats["applied"] == 0
    # The waiting decision's record is held: the group's commit stops before it.
    assert sum(bus.group_lag(applier_group("h")).values()) == 1
    fresh = waiting(decision(p=0.2), 0.0, 2)
    await bus.publish(T.decisions, "h", encode(fresh))
    got = {r.decision_id: r for r in await results(bus, 2)}  # well before 30 s
    assert got["h-2"].status == "applied"
    assert got["h-1"].status == "skipped" and "superseded by h-2" in got["h-1"].reason
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert svc.stats["superseded"] == 1 and svc.stats["applied"] == 1


async def test_a_stop_during_the_wait_answers_at_once_and_nothing_is_lost() -> None:
    bus, stop = MemoryBus(), asyncio.Event()
    svc = ApplierService(bus, S, "h")
    task = asyncio.create_task(svc.run(stop))
    await bus.publish(T.decisions, "h", encode(waiting(decision(p=0.9), 25.0, 1)))
    async with asyncio.timeout(5):
        await svc.drained(T.decisions, 1)
    started = time.monotonic()
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert time.monotonic() - started < 5  # not the 25 s wait
    [result] = await results(bus, 1)
    assert result.status == "applied" and result.decision_id == "h-1"


async def test_a_restarted_applier_acknowledges_what_it_answered_and_enacts_it_not_again() -> None:
    bus = MemoryBus()
    first, stop = ApplierService(bus, S, "h"), asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await bus.publish(T.decisions, "h", encode(waiting(decision(p=0.9), 0.3, 1)))
    [answered] = await results(bus, 1)  # after its wait, from the task
    assert answered.status == "applied"
    # No later batch committed past it: a process dying now leaves it uncommitted.
    assert sum(bus.group_lag(applier_group("h")).values()) == 1
    stop.set()
    async with asyncio.timeout(5):
        await task
    again, stop2 = ApplierService(bus, S, "h"), asyncio.Event()
    task2 = asyncio.create_task(again.run(stop2))
    async with asyncio.timeout(5):
        await again.drained(T.decisions, 1)  # redelivered
    stop2.set()
    async with asyncio.timeout(5):
        await task2
    # Read back from qas.applied: acknowledged again with its first result, not enacted twice.
    assert again.stats["redelivered"] == 1 and again.stats["applied"] == 0
    second = [r for r in await results(bus, 2, "reader-2") if r.decision_id == "h-1"]
    assert len(second) == 2 and second[0] == second[1]


async def test_a_host_whose_decisions_come_faster_than_its_jitter_still_gets_one_enacted() -> None:
    bus, stop = MemoryBus(), asyncio.Event()
    svc = ApplierService(bus, S, "h")
    task = asyncio.create_task(svc.run(stop))
    # Every 0.1 s a decision with a 0.3 s jitter: each supersedes the one waiting and keeps its
    # deadline, so decisions are enacted while they keep coming, not only once they stop.
    for n in range(1, 13):
        await bus.publish(T.decisions, "h", encode(waiting(decision(p=0.2 + n / 30), 0.3, n)))
        await asyncio.sleep(0.1)
    enacted_while_coming = svc.stats["applied"]
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert enacted_while_coming >= 1, svc.stats
    assert svc.stats["superseded"] >= 3
    assert svc.stats["applied"] + svc.stats["superseded"] == 12
