"""The applier: gate, idempotency, actuators, pool figures and the Prometheus page."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
from pathlib import Path

import msgspec
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.applier.actuators import CgroupLimits, GpuPowerLimit, PoolEnactor, ProcessLimits
from services.applier.metrics import Metrics
from services.applier.pool import TieredPool
from services.applier.service import (
    TICK_FLUSH_SECONDS,
    TICK_MAX_WAIT_SECONDS,
    TICK_MIN_BLOCK,
    ApplierService,
)
from services.bus.memory import MemoryBus
from services.observer import sysfs
from services.telemetry import Page
from shared.config import DecisionConstants, Settings
from shared.decision import decide
from shared.messages import ApplyResult, PriceTick, PriorState, ScalingDecision, decode, encode
from tests.support.factories import inputs_for, reference_host, sensors
from tests.support.fake_nvml import RTX_3060_TI, FakeNvml

S = Settings(decision=DecisionConstants(max_jitter_seconds=0.0))


def decision(
    e: float = 0.5, t: float = 0.2, p: float = 0.5, now: float | None = None, **kw: object
) -> ScalingDecision:
    d, _ = decide(inputs_for(reference_host(), e, t, p, **kw), PriorState(), host_id="h",
                  now=time.time() if now is None else now, c=S.decision)  # fmt: skip
    assert d is not None
    return d


async def run_applier(
    svc: ApplierService, bus: MemoryBus, msgs: list[tuple[str, bytes]], expect: int
) -> list[ApplyResult]:
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    for topic, data in msgs:
        await bus.publish(topic, "h", data)
    reader = bus.consumer([S.topics.applied], "reader")
    await reader.start()
    out: list[ApplyResult] = []
    async with asyncio.timeout(5):
        while len(out) < expect:
            out += [decode(r.value, ApplyResult) for r in await reader.getmany(timeout=0.1)]
    stop.set()
    await task
    return out


async def test_gate_and_idempotent_redelivery() -> None:
    bus = MemoryBus()
    pool = TieredPool(budget_bytes=10**8)
    svc = ApplierService(bus, S, "h", enactors=[PoolEnactor(pool)], pool=pool)
    good = decision(p=0.9)
    stale = decision(now=time.time() - 600)
    unsure = msgspec.structs.replace(decision(), decision_id="unsure", confidence=0.5, sequence=2)
    older = msgspec.structs.replace(decision(), decision_id="older", sequence=3,
                                    event_time=good.event_time - 1)  # fmt: skip
    msgs = [(S.topics.decisions, encode(m)) for m in (good, good, stale, unsure, older)]
    results = await run_applier(svc, bus, msgs, 5)
    assert [r.status for r in results] == ["applied", "applied", "rejected", "skipped", "skipped"]
    assert results[0] == results[1]  # redelivered: the same acknowledgement, not applied twice
    assert svc.stats["applied"] == 1 and svc.stats["redelivered"] == 1
    assert results[2].reason.startswith("stale:") and "confidence 0.50" in results[3].reason
    assert "older" in results[4].reason
    assert (
        results[0].engine_config is not None
        and results[0].engine_config.precision_bits == good.precision_bits
    )


async def test_ticks_fill_the_pool_and_apply_results_carry_its_figures() -> None:
    bus = MemoryBus()
    pool = TieredPool(budget_bytes=10**8)
    svc = ApplierService(bus, S, "h", enactors=[PoolEnactor(pool)], pool=pool)
    prices = 43_210.55 + np.cumsum(np.random.default_rng(5).integers(-3, 4, 2048)) * 0.01
    msgs = [(S.topics.ticks, encode(PriceTick(event_time=1.0 + i, host_id="h", symbol="ES", price=float(p))))
            for i, p in enumerate(prices)]  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    for topic, data in msgs:
        await bus.publish(topic, "h", data)
    async with asyncio.timeout(5):  # topics are not ordered against each other: wait for the ticks
        while len(pool.blocks("prices/ES")) < 2:
            await asyncio.sleep(0.01)
    stop.set()
    await task
    low = decision(p=0.1)  # low value: 8-bit
    results = await run_applier(svc, bus, [(S.topics.decisions, encode(low))], 1)
    (r,) = results
    assert r.status == "applied" and r.bytes_before > r.bytes_after > 0
    assert 0 < r.error_bound <= 0.01
    snap = pool.read("prices/ES")
    assert snap.tiers == (8, 8) and np.max(np.abs(snap.values - prices) / prices) <= r.error_bound


async def test_a_slow_feed_reaches_the_pool_within_the_longest_wait() -> None:
    now = [100.0]
    pool = TieredPool(budget_bytes=10**8)
    svc = ApplierService(MemoryBus(), S, "me", pool=pool, clock=lambda: now[0])

    def tick(i: int) -> PriceTick:
        return PriceTick(event_time=1.0 + i, host_id="h", symbol="ES", price=43_210.5 + i)

    for i in range(3):
        await svc.on_tick(tick(i))
        now[0] += 1.0
    assert pool.blocks("prices/ES") == ()  # 3 ticks in 2 s: still buffered (block of TICK_BLOCK)
    now[0] += TICK_FLUSH_SECONDS
    await svc.on_tick(tick(3))
    assert pool.blocks("prices/ES") == ()  # the timer fired, but 4 < TICK_MIN_BLOCK ticks
    now[0] += TICK_MAX_WAIT_SECONDS
    await svc.on_tick(tick(4))
    snap = pool.read("prices/ES")
    assert snap.values.size == 5 < TICK_MIN_BLOCK
    assert np.allclose(snap.values, 43_210.5 + np.arange(5), rtol=snap.rel_error)
    await svc.on_tick(tick(5))  # the next block starts afresh
    assert len(pool.blocks("prices/ES")) == 1


async def test_many_slow_symbols_share_one_timer_and_write_blocks_of_the_minimum_size() -> None:
    now = [0.0]
    pool = TieredPool(budget_bytes=10**9)
    svc = ApplierService(MemoryBus(), S, "me", pool=pool, clock=lambda: now[0])
    symbols, seconds = 1000, 50
    for second in range(seconds):  # each symbol ticks twice a second
        for k in range(2):
            for s in range(symbols):
                await svc.on_tick(PriceTick(event_time=second + k / 2, host_id="h",
                                            symbol=f"S{s}", price=100.0 + s + k))  # fmt: skip
        now[0] += 1.0
    blocks = [b for name in pool.names() for b in pool.blocks(name)]
    # the old per-symbol 5 s rule wrote 1000 blocks of 10 ticks every 5 s (9 000 by now)
    assert len(blocks) == symbols  # one sweep found each symbol at >= TICK_MIN_BLOCK ticks
    assert min(b.enc.n for b in blocks) >= TICK_MIN_BLOCK
    assert (
        sum(b.enc.n for b in blocks) + sum(map(len, svc._ticks.values())) == symbols * seconds * 2
    )


def test_cgroup_v2_tree_and_dry_run(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    d = decision(e=0.9)
    dry = CgroupLimits(tmp_path, dry_run=True).enact(d)
    assert dry.status == "applied" and dry.dry_run and "would write memory.high=" in dry.detail
    assert not (tmp_path / "memory.high").exists()
    res = CgroupLimits(tmp_path).enact(d)
    assert res.status == "applied"
    assert (tmp_path / "memory.high").read_text() == str(d.memory_budget_bytes)
    assert (tmp_path / "cpu.max").read_text() == f"{d.workers * 100000} 100000"


def test_cgroup_v1_tree(tmp_path: Path) -> None:
    mem, cpu = tmp_path / "memory", tmp_path / "cpu"
    mem.mkdir()
    cpu.mkdir()
    (mem / "memory.soft_limit_in_bytes").write_text("0")
    d = decision()
    assert CgroupLimits(mem, cpu).enact(d).status == "applied"
    assert (mem / "memory.soft_limit_in_bytes").read_text() == str(d.memory_budget_bytes)
    assert (cpu / "cpu.cfs_quota_us").read_text() == str(d.workers * 100000)


def test_missing_cgroup_and_permission_errors_are_failed_results(tmp_path: Path) -> None:
    gone = CgroupLimits(tmp_path / "nope").enact(decision())
    assert gone.status == "failed" and "no cgroup" in gone.detail
    (tmp_path / "cgroup.controllers").write_text("")
    (tmp_path / "memory.high").mkdir()  # writing to a directory fails like a refused write
    bad = CgroupLimits(tmp_path).enact(decision())
    assert bad.status == "failed" and "cannot write" in bad.detail
    missing = ProcessLimits(pid=2**22 + 12345).enact(decision())
    assert missing.status == "failed" and "no process" in missing.detail


def test_real_child_cgroup_where_permitted() -> None:
    own = sysfs.cgroup_paths(Path("/")).get("memory")
    base = (
        Path("/sys/fs/cgroup/memory") / (own or "/").lstrip("/") if own else Path("/sys/fs/cgroup")
    )
    child = base / f"qas-test-{os.getpid()}"
    try:
        child.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a child cgroup under {base}: {exc.strerror}")
    try:
        d = decision()
        res = CgroupLimits(child).enact(d)
        limit_file = (
            "memory.high" if (child / "memory.high").exists() else "memory.soft_limit_in_bytes"
        )
        # v2 takes both limits; on v1 the cpu controller lives elsewhere, and the detail says so
        assert res.status == "applied" or "cpu.cfs" in res.detail, res.detail
        assert int((child / limit_file).read_text()) // 4096 == d.memory_budget_bytes // 4096
    finally:
        child.rmdir()


def test_process_limits_on_this_process_dry_run() -> None:
    res = ProcessLimits(os.getpid(), dry_run=True).enact(decision(t=0.95))
    assert res.status == "applied" and res.dry_run and "nice" in res.detail
    assert ProcessLimits.nice_for(1.2) == 0 and ProcessLimits.nice_for(0.5) == 10


def test_gpu_power_limit_through_the_nvml_stand_in() -> None:
    nvml = FakeNvml([RTX_3060_TI.__class__(**RTX_3060_TI.__dict__)])
    hot = decision(t=0.95)
    assert GpuPowerLimit(nvml, dry_run=True).enact(hot).dry_run and not nvml.power_limits_set
    res = GpuPowerLimit(nvml).enact(hot)
    assert res.status == "applied"
    ((idx, mw),) = nvml.power_limits_set
    assert idx == 0 and mw == int(100_000 + 150_000 * hot.scaling_factor)

    def refuse(h: object, mw: int) -> None:
        import pynvml

        raise pynvml.NVMLError_NoPermission()

    nvml.nvmlDeviceSetPowerManagementLimit = refuse  # type: ignore[method-assign]
    denied = GpuPowerLimit(nvml).enact(hot)
    assert denied.status == "failed" and "Permission" in denied.detail


def test_metrics_page_parses_and_follows_conventions() -> None:
    m = Metrics()
    page = Page(m.registry, host="h")
    port = page.serve(0)
    try:
        pool = TieredPool(budget_bytes=10**7)
        pool.write("p", np.linspace(100, 101, 4096), value=0.5, now=1)
        m.observe_pool(pool)
        d = decision(e=0.9)
        m.observe_decision(d)
        m.observe_sensors(sensors(host="h", temperatures=[]))
        m.observe_apply(ApplyResult(event_time=d.event_time + 0.01, host_id="h", decision_id="x",
                                    decision_event_time=d.event_time, status="applied"))  # fmt: skip
        m.kafka_connected.set(1)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        page.close()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    for name in ("qas_scaling_factor", "qas_memory_adjustment", "qas_precision_bytes",
                 "qas_coherence_ratio", "qas_confidence_ratio", "qas_decisions", "qas_applies",
                 "qas_decision_apply_latency_seconds", "qas_pool_bytes", "qas_pool_error_bound_ratio",
                 "qas_hardware_changes", "qas_temperature_celsius", "qas_kafka_connected",
                 "qas_dead_letters", "qas_memory_budget_bytes", "qas_thermal_state_ratio"):  # fmt: skip
        assert name in families, name
    assert families["qas_decisions"].type == "counter"
    assert any(s.name == "qas_decisions_total" and s.labels == {"trigger": "market_entropy"}
               for s in families["qas_decisions"].samples)  # fmt: skip
    assert families["qas_decision_apply_latency_seconds"].type == "histogram"
    tiers = {s.labels["tier"]: s.value for s in families["qas_pool_bytes"].samples}
    assert tiers["16"] > 0 and tiers["8"] == 0
    assert "_total_total" not in body


def test_promtool_check_metrics_is_clean() -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed here (Debian package 'prometheus' provides it)")
    m = Metrics()
    pool = TieredPool(budget_bytes=10**7)
    pool.write("p", np.linspace(100, 101, 4096), value=0.5, now=1)
    m.observe_pool(pool)
    d = decision(e=0.9)
    m.observe_decision(d)
    m.observe_sensors(sensors(host="h"))
    r = subprocess.run(
        [promtool, "check", "metrics"], input=m.render(), capture_output=True, timeout=30
    )
    assert r.returncode == 0, (r.stdout + r.stderr).decode()


def test_sensor_series_are_capped_per_host_and_only_this_hosts_are_kept() -> None:
    from prometheus_client import generate_latest

    from shared.messages import Temperature

    bus = MemoryBus()
    svc = ApplierService(bus, msgspec.structs.replace(S, max_sensor_series_per_host=8), "h")
    small = len(generate_latest(svc.metrics.registry))
    for batch in range(50):  # 5 000 made-up sensor names, 100 a reading
        temps = [Temperature(sensor=f"fake{batch}-{i}", celsius=40.0) for i in range(100)]
        asyncio.run(svc.on_sensors(sensors(host="h", temperatures=temps)))
        asyncio.run(svc.on_sensors(sensors(host=f"other-{batch}", temperatures=temps)))
    page = generate_latest(svc.metrics.registry).decode()
    series = [ln for ln in page.splitlines() if ln.startswith("qas_temperature_celsius{")]
    assert len(series) == 8 + 1  # the cap, plus one "other" series for the rest
    assert 'sensor="other"' in page and "other-0" not in page  # other hosts make no series
    assert len(page) < small + 4000


def test_a_reading_with_too_many_sensors_is_invalid() -> None:
    from shared.messages import MAX_TEMPERATURES, InvalidMessage, SensorReading, Temperature

    temps = [{"sensor": f"s{i}", "celsius": 40.0} for i in range(MAX_TEMPERATURES + 1)]
    raw = msgspec.json.encode({**msgspec.to_builtins(sensors()), "temperatures": temps})
    with pytest.raises(InvalidMessage, match="length"):
        decode(raw, SensorReading)
    with pytest.raises(InvalidMessage):  # and it cannot be published either
        encode(sensors(temperatures=[Temperature(sensor=f"s{i}", celsius=40.0)
                                     for i in range(MAX_TEMPERATURES + 1)]))  # fmt: skip
    with pytest.raises(InvalidMessage):
        decode(msgspec.json.encode({**msgspec.to_builtins(sensors()),
                                    "temperatures": [{"sensor": "x" * 200, "celsius": 1.0}]}),
               SensorReading)  # fmt: skip


async def test_answers_are_kept_only_while_a_redelivery_could_still_be_taken() -> None:
    now = [time.time()]
    svc = ApplierService(MemoryBus(), S, "h", clock=lambda: now[0])
    first = decision(now=now[0])
    results = await run_applier(svc, svc.bus, [(S.topics.decisions, encode(first))], 1)  # type: ignore[arg-type]
    assert results[0].status == "applied" and first.decision_id in svc.results
    # Past the event-time window a redelivery is refused as stale before its answer is looked
    # up: the answer is dropped at the next one, instead of filling the cache to SEEN_IDS.
    now[0] += S.applier.max_decision_age_seconds + 2
    later = msgspec.structs.replace(decision(now=now[0]), decision_id="later", sequence=2)
    again = await run_applier(svc, svc.bus, [(S.topics.decisions, encode(later)),  # type: ignore[arg-type]
                                             (S.topics.decisions, encode(first))], 3)  # fmt: skip
    assert list(svc.results) == ["later"]
    assert [r.status for r in again[1:]] == ["applied", "rejected"]
    assert again[2].reason.startswith("stale:")
