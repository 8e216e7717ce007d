"""Hosts without a hardware record cost no state: counted, a few inputs held, a warning a
minute at most; the allowlist; the fleet-only /metrics (in-memory bus)."""

from __future__ import annotations

import logging

import msgspec
import pytest
from prometheus_client import generate_latest

from services.bus.memory import MemoryBus
from services.decider.metrics import DeciderMetrics
from services.decider.service import DeciderService
from services.decider.unknown import PENDING, WARN_EVENTS
from shared.config import Settings
from shared.hostfilter import parse_hosts
from shared.messages import MarketEntropy, PriceTick
from tests.support.factories import reference_host, sensors, snapshot

S = Settings()
T = S.topics


def sample(page: bytes, name: str) -> float:
    """The value of one exact series line of a /metrics page."""
    for line in page.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not on the page")


async def test_inputs_of_a_host_without_hardware_are_counted_not_tracked() -> None:
    svc = DeciderService(MemoryBus(), S, "d", clock=lambda: 1000.0)
    for i in range(500):
        await svc.on_sensors(sensors(host=f"flood-{i}"))
        await svc.on_entropy(MarketEntropy(event_time=1000.0, host_id=f"flood-{i}", value=0.9))
        await svc.on_tick(PriceTick(event_time=1000.0, host_id=f"flood-{i}", symbol="X",
                                    price=1.0))  # fmt: skip
    await svc.on_handled()
    assert svc.hosts == {} and svc._estimators == {} and svc._dirty == {}
    assert len(svc.unknown.pending) == PENDING
    page = generate_latest(svc.metrics.registry)
    assert b"flood-" not in page
    for topic in (T.sensors, T.entropy, T.ticks):
        series = f'qas_unknown_host_events_total{{reason="no_hardware",topic="{topic}"}}'
        assert sample(page, series) == 500
    assert sample(page, "qas_tracked_hosts") == 0


async def test_a_host_whose_hardware_arrives_later_gets_its_held_inputs() -> None:
    svc = DeciderService(MemoryBus(), S, "d", clock=lambda: 1000.0)
    made: list[object] = []
    svc.on_decision = made.append
    await svc.on_sensors(sensors(host="late", t=999.0, thermal_state=0.7))
    await svc.on_entropy(MarketEntropy(event_time=999.0, host_id="late", value=0.8))
    await svc.on_handled()
    assert made == [] and "late" not in svc.hosts
    await svc.on_hardware(snapshot(reference_host(), host="late", t=1000.0))
    await svc.on_handled()
    state = svc.hosts["late"]
    assert state.sensors is not None and state.sensors.thermal_state == 0.7
    assert state.entropy is not None and state.entropy.value == 0.8
    assert len(made) == 1 and svc.unknown.pending == {}


async def test_a_hardware_record_whose_fingerprint_is_not_its_inventorys_is_refused() -> None:
    svc = DeciderService(MemoryBus(), S, "d", clock=lambda: 1000.0)
    forged = msgspec.structs.replace(snapshot(reference_host(), host="fake"), fingerprint="0" * 64)
    await svc.on_hardware(forged)
    assert "fake" not in svc.hosts and svc.stats["hardware_invalid"] == 1
    page = generate_latest(svc.metrics.registry)
    assert sample(page, f'qas_unknown_host_events_total{{reason="invalid_hardware",'
                        f'topic="{T.hardware}"}}') == 1  # fmt: skip


async def test_the_allowlist_tracks_the_hosts_it_names_only() -> None:
    svc = DeciderService(MemoryBus(), S, "d", clock=lambda: 1000.0,
                         hosts=parse_hosts("web-*,db-1"))  # fmt: skip
    for h in ("web-1", "web-22", "db-1", "db-2", "flood-0"):
        await svc.on_hardware(snapshot(reference_host(), host=h))
        await svc.on_sensors(sensors(host=h))
    assert sorted(svc.hosts) == ["db-1", "web-1", "web-22"]
    assert svc.stats["not_allowed_events"] == 4 and svc.unknown.pending == {}
    assert DeciderService(MemoryBus(), S, "d", hosts=parse_hosts("*")).allowed is None


async def test_a_flood_warns_at_most_once_a_minute_with_its_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    svc = DeciderService(MemoryBus(), S, "d", clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "qas.decider")

    async def flood(n: int) -> None:
        for i in range(n):
            await svc.on_sensors(sensors(host=f"flood-{i}"))

    await flood(WARN_EVENTS - 1)
    assert svc.unknown.warnings == 0  # below the rate: nothing to say
    await flood(5 * WARN_EVENTS)
    now[0] += 59.0
    await flood(WARN_EVENTS)
    assert svc.unknown.warnings == 1  # the first, and no second within the minute
    assert f"{T.sensors} {WARN_EVENTS}" in caplog.records[0].getMessage()
    now[0] += 1.0
    await flood(WARN_EVENTS)
    assert svc.unknown.warnings == 2
    since_first = (5 * WARN_EVENTS - 1) + WARN_EVENTS + WARN_EVENTS
    assert f"{T.sensors} {since_first} " in caplog.records[1].getMessage()
    now[0] += 600.0
    await flood(WARN_EVENTS // 2)  # a trickle after a quiet spell: no warning
    assert svc.unknown.warnings == 2


async def test_an_eviction_at_the_host_cap_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "qas.decider")
    svc = DeciderService(MemoryBus(), msgspec.structs.replace(S, max_tracked_hosts=2), "d",
                         clock=lambda: 1000.0)  # fmt: skip
    for h in ("a", "b", "c"):
        await svc.on_hardware(snapshot(reference_host(), host=h))
    assert sorted(svc.hosts) == ["b", "c"] and svc.unknown.warnings == 1
    assert "1 host(s) evicted" in caplog.records[0].getMessage()
    page = generate_latest(svc.metrics.registry)
    assert sample(page, 'qas_hosts_dropped_total{reason="cap"}') == 1


async def test_metrics_per_host_none_serves_only_the_fleet_aggregates() -> None:
    pages = []
    for per_host in (True, False):
        svc = DeciderService(MemoryBus(), S, "d", clock=lambda: 1000.0,
                             metrics=DeciderMetrics(lambda: 1000.0, per_host=per_host))  # fmt: skip
        await svc.on_start()
        for h in ("h1", "h2"):
            await svc.on_hardware(snapshot(reference_host(), host=h))
        await svc.on_handled()
        pages.append(generate_latest(svc.metrics.registry))
    every, fleet = pages
    assert b'host="h1"' in every and b"host=" not in fleet
    for page in pages:
        assert sample(page, "qas_tracked_hosts") == 2
        assert sample(page, 'qas_decider_evaluations_total{outcome="published"}') == 2
        states = [ln for ln in page.decode().splitlines()
                  if ln.startswith("qas_hosts_in_quantum_state{")]  # fmt: skip
        assert sum(float(ln.split()[-1]) for ln in states) == 2
