"""A decider taking hosts over (a partition assigned in a rebalance), deciding once per batch,
and forgetting hosts it has not heard from."""

from __future__ import annotations

import zlib

import msgspec
from prometheus_client import generate_latest

from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import DecisionConstants, Settings
from shared.messages import MarketEntropy, ProfitPotential, ScalingDecision, decode, encode
from tests.support.factories import reference_host, sensors, snapshot

S = Settings(decision=DecisionConstants(tolerance=0.0, max_jitter_seconds=0.0))
T = S.topics
PARTITIONS = 3


def partition(host: str) -> int:
    return zlib.crc32(host.encode()) % PARTITIONS  # the memory bus's partitioner


def hosts_on(p: int, n: int) -> list[str]:
    return [h for h in (f"host-{i}" for i in range(100)) if partition(h) == p][:n]


async def known(svc: DeciderService, *hosts: str, t: float = 1000.0) -> None:
    """Each host's hardware record: the decider tracks only hosts that sent one."""
    for h in hosts:
        await svc.on_hardware(snapshot(reference_host(), host=h, t=t))


async def decisions(bus: MemoryBus) -> list[ScalingDecision]:
    return [decode(r.value, ScalingDecision) for r in await bus.read_back([T.decisions], 1.0)]


async def test_a_takeover_rebuilds_only_the_hosts_of_the_assigned_partitions() -> None:
    bus, now = MemoryBus(partitions=PARTITIONS), [1000.0]
    mine, other = hosts_on(0, 2), hosts_on(1, 1)
    first = DeciderService(bus, S, "a", clock=lambda: now[0])
    for h in [*mine, *other]:
        await bus.publish(T.hardware, h, encode(snapshot(reference_host(), host=h, t=now[0])))
        await first.on_hardware(snapshot(reference_host(), host=h, t=now[0]))
        await first.on_entropy(MarketEntropy(event_time=now[0], host_id=h, value=0.9))
    await first.on_handled()
    before = {d.host_id: d for d in await decisions(bus)}
    assert set(before) == {*mine, *other}

    # A second decider (an older process: a lower epoch) is assigned partition 0 only.
    second = DeciderService(bus, S, "b", clock=lambda: now[0])
    second.epoch = first.epoch - 1000
    await second.on_assigned({(T.entropy, 0), (T.hardware, 0)})
    assert set(second.hosts) == set(mine)
    now[0] = 1001.0
    for h in mine:
        await second.on_entropy(MarketEntropy(event_time=now[0], host_id=h, value=1.0))
    await second.on_handled()
    after = {d.host_id: d for d in await decisions(bus) if d.event_time == 1001.0}
    assert set(after) == set(mine)
    for h in mine:
        assert after[h].inputs.fingerprint == before[h].inputs.fingerprint
        assert after[h].sequence == before[h].sequence + 1  # the stabiliser carried on
        # Never a lower epoch than the host's last decision: the applier would refuse it.
        assert after[h].sequence_epoch == before[h].sequence_epoch


async def test_a_batch_is_one_decision_per_host_from_its_newest_inputs() -> None:
    bus, now = MemoryBus(), [1000.0]
    svc = DeciderService(bus, S, "d", clock=lambda: now[0])
    await known(svc, "h1", "h2")
    for v in (0.2, 0.5, 0.95):
        await svc.on_entropy(MarketEntropy(event_time=now[0], host_id="h1", value=v))
    await svc.on_profit(ProfitPotential(event_time=now[0], host_id="h2", value=0.9))
    assert await decisions(bus) == []  # nothing until the batch ends
    await svc.on_handled()
    made = await decisions(bus)
    assert sorted(d.host_id for d in made) == ["h1", "h2"]
    assert next(d for d in made if d.host_id == "h1").inputs.market_entropy == 0.95


async def test_one_hosts_failing_evaluation_does_not_stop_the_others(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bus, now = MemoryBus(), [1000.0]
    svc = DeciderService(bus, S, "d", clock=lambda: now[0])
    await known(svc, "bad", "good")
    for h in ("bad", "good"):
        await svc.on_entropy(MarketEntropy(event_time=now[0], host_id=h, value=0.9))
    real = svc._decide

    def decide(host_id: str):  # type: ignore[no-untyped-def]
        if host_id == "bad":
            raise ValueError("a bug in one host's inputs")
        return real(host_id)

    monkeypatch.setattr(svc, "_decide", decide)
    await svc.on_handled()
    assert [d.host_id for d in await decisions(bus)] == ["good"]
    assert svc.stats["evaluations_failed"] == 1


async def test_a_redelivered_older_market_input_does_not_replace_a_rebuilt_one() -> None:
    bus, now = MemoryBus(), [1000.0]
    svc = DeciderService(bus, S, "d", clock=lambda: now[0])
    await bus.publish(T.hardware, "h1", encode(snapshot(reference_host(), host="h1")))
    await known(svc, "h1")
    await svc.on_entropy(MarketEntropy(event_time=1000.0, host_id="h1", value=0.9))
    await svc.on_handled()
    restarted = DeciderService(bus, S, "d", clock=lambda: now[0])
    await restarted.on_assigned({(T.entropy, p) for p in range(3)})
    assert restarted.hosts["h1"].hardware is not None
    held = restarted.hosts["h1"].entropy
    assert held is not None and held.source == "rebuilt" and held.value == 0.9
    await restarted.on_entropy(MarketEntropy(event_time=990.0, host_id="h1", value=0.1))
    assert restarted.hosts["h1"].entropy == held
    assert restarted.stats["older_inputs_ignored"] == 1


async def test_hosts_unseen_for_the_configured_age_are_forgotten_with_their_series() -> None:
    now = [1000.0]
    settings = msgspec.structs.replace(S, host_state_max_age_seconds=60.0)
    svc = DeciderService(MemoryBus(), settings, "d", clock=lambda: now[0])
    await known(svc, "old", t=now[0])
    await svc.on_sensors(sensors(host="old", t=now[0]))
    await svc.on_entropy(MarketEntropy(event_time=now[0], host_id="old", value=0.9))
    await svc.on_handled()
    assert b'host="old"' in generate_latest(svc.metrics.registry)
    now[0] += 30.0
    await known(svc, "kept", t=now[0])
    await svc.on_entropy(MarketEntropy(event_time=now[0], host_id="kept", value=0.9))
    now[0] += 31.0  # "old" unseen for 61 s, "kept" for 31 s
    await known(svc, "new", t=now[0])
    await svc.on_entropy(MarketEntropy(event_time=now[0], host_id="new", value=0.9))
    assert set(svc.hosts) == {"kept", "new"}
    assert svc.stats["hosts_expired"] == 1
    page = generate_latest(svc.metrics.registry)
    assert b'host="old"' not in page and b'host="kept"' in page
    # A forgotten host is unknown until its hardware comes again: then it gets series again
    # (not writes to removed ones).
    await svc.on_entropy(MarketEntropy(event_time=now[0], host_id="old", value=0.2))
    assert "old" not in svc.hosts and svc.stats["unknown_host_events"] == 1
    await known(svc, "old", t=now[0])
    assert svc.hosts["old"].entropy is not None  # the input held meanwhile
    await svc.on_handled()
    assert b'qas_decisions_published_total{host="old"}' in generate_latest(svc.metrics.registry)
