"""A restarted decider rebuilds hardware and stabiliser state from the bus before deciding."""

from __future__ import annotations

from services.bus.base import BusError
from services.bus.memory import MemoryBus
from shared.messages import MarketEntropy, ScalingDecision, encode
from tests.services.decider.test_service import TOPICS, read, running, send
from tests.support.factories import reference_host, snapshot


async def test_restart_keeps_fingerprint_memory_and_sequence_of_a_known_host() -> None:
    bus, now = MemoryBus(), [1000.0]
    snap = snapshot(reference_host(), host="h1", t=1000.0)
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.hardware, encode(snap))
        now[0] = 1010.0
        await send(bus, svc, TOPICS.entropy,
                   encode(MarketEntropy(event_time=1010.0, host_id="h1", value=0.9)))  # fmt: skip
    before = [d for _, d in await read(bus, TOPICS.decisions, ScalingDecision, 2)][-1]
    assert before.inputs.fingerprint == snap.fingerprint

    # Same group: the hardware record is committed, so only the read-back can bring it back.
    now[0] = 1020.0
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.entropy,  # handled only after on_start's rebuild
                   encode(MarketEntropy(event_time=1020.0, host_id="h1", value=1.0)))  # fmt: skip
        assert svc.stats["decisions"] == 1 and svc.stats["handled:" + TOPICS.hardware] == 0
    after = [d for _, d in await read(bus, TOPICS.decisions, ScalingDecision, 3)][-1]
    assert after.inputs.fingerprint == snap.fingerprint
    assert after.memory_budget_bytes > 0 and before.memory_budget_bytes > 0
    assert after.sequence == before.sequence + 1  # the stabiliser carried on
    assert after.prior.smoothed_entropy is not None  # smoothing carried on, not restarted


async def test_undecodable_records_on_the_read_back_topics_are_skipped() -> None:
    bus, now = MemoryBus(), [1000.0]
    await bus.publish(TOPICS.hardware, "h1", b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}")
    await bus.publish(TOPICS.decisions, "h1", b"\xff\xfe")
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.entropy,
                   encode(MarketEntropy(event_time=1000.0, host_id="h2", value=0.5)))  # fmt: skip
        assert svc.stats["rebuild_skipped"] == 2 and "h1" not in svc.hosts


async def test_tracked_hosts_are_capped_least_recently_seen_evicted_and_counted() -> None:
    from services.decider.service import DeciderService
    from shared.config import Settings

    svc = DeciderService(MemoryBus(), Settings(max_tracked_hosts=3), "me")
    for host in ("a", "b", "c", "a", "d", "e"):
        svc._host(host)
    assert list(svc.hosts) == ["a", "d", "e"] and svc.stats["hosts_evicted"] == 2



class _DecisionsUnreadable(MemoryBus):
    """A bus whose decisions topic cannot be read back once ``unreadable`` is set (a restarted
    Tansu's, README Reliability)."""

    unreadable = False

    async def read_back(self, topics, seconds, tail=None, partitions=None):  # type: ignore[no-untyped-def]
        if self.unreadable and TOPICS.decisions in topics:
            raise BusError(f"reading back {list(topics)} timed out", retriable=True)
        return await super().read_back(topics, seconds, tail, partitions)


async def test_hardware_is_rebuilt_when_the_decisions_cannot_be_read_back() -> None:
    bus, now = _DecisionsUnreadable(), [1000.0]
    snap = snapshot(reference_host(), host="h1", t=1000.0)
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.hardware, encode(snap))
    bus.unreadable = True
    now[0] = 1010.0
    # Same group: the hardware record is committed, so only the read-back can bring it back.
    async with running(bus, now) as svc:
        await send(bus, svc, TOPICS.entropy,
                   encode(MarketEntropy(event_time=1010.0, host_id="h1", value=0.9)))  # fmt: skip
        assert svc.stats["rebuild_failed"] == 1 and svc.stats["handled:" + TOPICS.hardware] == 0
    first = [d for _, d in await read(bus, TOPICS.decisions, ScalingDecision, 2)][-1]
    assert first.inputs.fingerprint == snap.fingerprint and first.memory_budget_bytes > 0
