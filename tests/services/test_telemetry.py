"""Every service's metrics: one page per process, bounded labels, lag, promtool-clean."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from services.bus.memory import MemoryBus
from services.decider.metrics import DeciderMetrics
from services.decider.service import DeciderService
from services.observer.metrics import ObserverMetrics
from services.telemetry import OTHER, LabelBound, Page
from shared.config import Settings
from shared.messages import (
    GpuInfo,
    GpuSensors,
    MarketEntropy,
    ProfitPotential,
    ScalingDecision,
    encode,
)
from tests.support.factories import reference_host, sensors, snapshot
from tests.support.prometheus import promtool

S = Settings()


def samples(page: Page) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(page.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_page_merges_families_of_the_same_name_and_shows_a_shared_sample_once() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    Gauge("qas_kafka_connected", "x", registry=a).set(1)
    Gauge("qas_kafka_connected", "x", registry=b).set(1)
    Gauge("qas_thing", "x", ["service"], registry=a).labels("a").set(1)
    Gauge("qas_thing", "x", ["service"], registry=b).labels("b").set(2)
    text = Page(a, b).render().decode()
    assert text.count("# TYPE qas_kafka_connected gauge") == 1
    assert text.count("\nqas_kafka_connected ") == 1
    assert 'qas_thing{service="a"} 1.0' in text and 'qas_thing{service="b"} 2.0' in text
    assert text.count("# TYPE qas_thing gauge") == 1
    assert "qas_build_info{" in text and "process_cpu_seconds_total" in text
    assert promtool("check", "metrics", stdin=text.encode()).returncode == 0


def test_label_bound_folds_values_past_its_limit_into_other() -> None:
    bound = LabelBound(2)
    assert [bound(v) for v in ("a", "b", "c", "a", "d", "b")] == ["a", "b", OTHER, "a", OTHER, "b"]


async def test_memory_consumer_reports_its_lag_per_partition() -> None:
    bus = MemoryBus(partitions=1)
    reader = bus.consumer(["t"], "g")
    await reader.start()
    for i in range(5):
        await bus.publish("t", "k", str(i).encode())
    assert await reader.lag() == {("t", 0): 5}
    assert len(await reader.getmany(timeout=0, max_records=2)) == 2
    assert await reader.lag() == {("t", 0): 3}


def test_observer_metrics_gpu_memory_and_fingerprint_changes_from_zero() -> None:
    m = ObserverMetrics()
    gpu = GpuInfo(index=0, name="X", memory_total_bytes=8 << 30)
    inv = reference_host()
    import msgspec

    inv = msgspec.structs.replace(inv, gpus=[gpu])
    m.observe_snapshot(snapshot(inv, host="h1"))
    m.observe_reading(sensors(host="h1", gpus=[GpuSensors(index=0, memory_used_bytes=1 << 30)]))
    page = samples(Page(m.registry))
    assert page[("qas_hardware_fingerprint_changes_total", (("host", "h1"),))] == 0
    assert page[("qas_gpu_memory_total_bytes", (("gpu", "0"), ("host", "h1")))] == 8 << 30
    assert page[("qas_gpu_memory_used_bytes", (("gpu", "0"), ("host", "h1")))] == 1 << 30
    m.observe_snapshot(snapshot(inv, host="h1", changed=True, previous_fingerprint="0" * 64))
    assert (
        samples(Page(m.registry))[("qas_hardware_fingerprint_changes_total", (("host", "h1"),))]
        == 1
    )


async def test_decider_exports_held_published_state_inputs_and_ages() -> None:
    bus, now = MemoryBus(), [1000.0]
    metrics = DeciderMetrics(clock=lambda: now[0])
    svc = DeciderService(bus, S, "me", clock=lambda: now[0], metrics=metrics)
    page = Page(metrics.registry)
    page.lag.watch(svc.group, svc.lag)
    decided: list[ScalingDecision] = []
    svc.on_decision = decided.append
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    t = S.topics
    try:
        for topic, msg in (
            (t.hardware, snapshot(reference_host(), host="h1", t=1000.0)),
            (t.entropy, MarketEntropy(event_time=1000.0, host_id="h1", value=0.9)),
            (t.profit, ProfitPotential(event_time=1000.0, host_id="h1", value=0.5)),
        ):
            done = svc.stats[f"handled:{topic}"] + 1
            await bus.publish(topic, "h1", encode(msg))
            async with asyncio.timeout(5):
                await svc.drained(topic, done)
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task
    now[0] = 1030.0
    got = samples(page)
    h = (("host", "h1"),)
    published = got[("qas_decisions_published_total", h)]
    assert published == svc.stats["decisions"] >= 1
    assert got.get(("qas_decisions_held_total", h), 0) == svc.stats["held"]
    assert published + svc.stats["held"] == 3
    assert got[("qas_last_decision_age_seconds", h)] == 30.0
    assert got[("qas_input_age_seconds", (("host", "h1"), ("input", "entropy")))] == 30.0
    assert got[("qas_market_entropy_ratio", h)] == decided[-1].inputs.market_entropy
    assert got[("qas_batch_size", h)] == decided[-1].batch_size
    states = [v for (name, _), v in got.items() if name == "qas_quantum_state"]
    assert sorted(states) == [0.0, 0.0, 0.0, 1.0]
    lag = {k: v for k, v in got.items() if k[0] == "qas_consumer_lag_records"}
    assert lag and set(lag.values()) == {0.0}  # all consumed
    assert got[("qas_dead_letters_total", (("service", "decider"),))] == 0
    assert promtool("check", "metrics", stdin=page.render()).returncode == 0
