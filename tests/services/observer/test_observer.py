"""The observer on recorded hosts (Pi 4, containers, RTX 3060 Ti, two GPUs) and on this machine."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pynvml
import pytest

from services.bus.memory import MemoryBus
from services.observer import sysfs
from services.observer.nvml import NvmlReader, load_pynvml
from services.observer.probe import HardwareProbe
from services.observer.service import ObserverService
from services.observer.stats import ProcfsStats
from shared.config import Settings
from shared.messages import HardwareSnapshot, SensorReading, decode
from tests.support.fake_nvml import A100_40GB, RTX_3060_TI, RTX_4090, FakeNvml

HOSTS = Path(__file__).resolve().parents[2] / "fixtures" / "hosts"
GIB = 1 << 30
S = Settings()


def probe(host: str | Path, nvml: FakeNvml | None = None) -> HardwareProbe:
    root = host if isinstance(host, Path) else HOSTS / host
    reader = NvmlReader(nvml)  # type: ignore[arg-type]
    return HardwareProbe(S, "fixture", root=root, stats=ProcfsStats(root), nvml=reader)


# --- recorded hosts -----------------------------------------------------------------------


def test_raspberry_pi_4_healthy() -> None:
    p = probe("pi4-healthy")
    snap, reading = p.snapshot(), p.sample()
    inv = snap.inventory
    assert inv.board_model == "Raspberry Pi 4 Model B Rev 1.4"
    assert inv.logical_cores == 4 and inv.cpu_max_freq_mhz == 1800.0 and inv.gpus == []
    assert inv.memory_total_bytes == 3884 * 1024 * 1024 and inv.memory_limit_bytes is None
    assert inv.cpu_model == "BCM2835"
    assert reading.pi_throttle is not None and reading.pi_throttle.raw == 0
    assert not reading.thermal_throttling
    # 48.7 C against the Pi 4's 80 C soft limit, 40 C idle: (48.686 - 40) / 40
    assert reading.thermal_state == pytest.approx((48.686 - 40) / 40, abs=1e-3)
    assert any(m.part == "gpu" for m in snap.missing)  # said, with the reason


def test_raspberry_pi_4_throttled() -> None:
    reading = probe("pi4-throttled").sample()
    flags = reading.pi_throttle
    assert flags is not None and flags.raw == 0xE000E
    assert flags.soft_temp_limit and flags.throttled and flags.frequency_capped
    assert flags.soft_temp_limit_since_boot and not flags.under_voltage
    assert reading.thermal_throttling and reading.thermal_state == 1.0  # hardware says so
    assert reading.memory_pressure_some_avg10 == 12.5
    assert reading.swap_used_bytes == (102396 - 40000) * 1024


def test_pi_under_voltage_is_not_heat() -> None:
    flags = sysfs.decode_pi_throttled(0x50005)
    assert flags.under_voltage and flags.throttled and flags.under_voltage_since_boot
    from shared.thermal import pi_heat_throttling

    assert not pi_heat_throttling(flags)


@pytest.mark.parametrize(
    ("host", "limit", "quota"),
    [("container-v2", 2 * GIB, 1.5), ("container-v1", 1 * GIB, 0.5)],
)
def test_container_limits(host: str, limit: int, quota: float) -> None:
    snap = probe(host).snapshot()
    inv = snap.inventory
    assert inv.memory_limit_bytes == limit and inv.cpu_quota_cores == quota
    assert inv.effective_memory_bytes == limit and inv.effective_cores == quota
    assert snap.scores.ram_score == pytest.approx(limit / GIB / 128)


def test_desktop_rtx_3060_ti() -> None:
    nvml = FakeNvml([RTX_3060_TI])
    p = probe("desktop-rtx3060ti", nvml)
    snap, reading = p.snapshot(), p.sample()
    (gpu,) = snap.inventory.gpus
    assert gpu.name == "NVIDIA GeForce RTX 3060 Ti" and gpu.memory_total_bytes == 8 * GIB
    assert gpu.sm_count == 38 and gpu.cuda_cores == 4864 and gpu.cuda_cores_source == "sm_table"
    assert gpu.compute_capability == "8.6" and gpu.tier == "mid_range"
    assert gpu.memory_bandwidth_gbps == pytest.approx(448.0, abs=0.1)
    assert gpu.boost_clock_mhz == 1665.0
    assert gpu.uuid_sha256 and RTX_3060_TI.uuid not in json.dumps(snap.inventory.__struct_fields__)
    assert RTX_3060_TI.uuid.encode() not in __import__("msgspec").json.encode(
        snap
    )  # never in clear
    assert snap.scores.gpu_score == pytest.approx(0.189, abs=5e-4)
    (g,) = reading.gpus
    assert g.temperature_celsius == 45 and g.memory_free_bytes == 8 * GIB - (512 << 20)
    assert g.power_watts == 60.0 and g.throttle_reasons == ["gpu_idle"]
    assert any(t.sensor == "k10temp/Tctl" and t.celsius == 55.25 for t in reading.temperatures)


def test_two_different_gpus() -> None:
    nvml = FakeNvml([A100_40GB, RTX_4090])
    snap = probe("server-two-gpus", nvml).snapshot()
    a100, r4090 = snap.inventory.gpus
    assert (a100.cuda_cores, a100.cuda_cores_source, a100.tier) == (6912, "nvml", "high_end")
    assert (r4090.cuda_cores, r4090.tier) == (16384, "extreme")
    assert a100.memory_bandwidth_gbps == pytest.approx(5120 / 8 * 1215 * 2 / 1000)
    assert snap.scores.gpu_score == pytest.approx(
        1.0 * (1.0 + 1.0) / 2
    )  # the 4090 is the reference
    assert snap.inventory.logical_cores == 64


def test_gpu_thermal_throttle_reason_forces_thermal_state_one() -> None:
    hot = FakeNvml(
        [RTX_3060_TI.__class__(**{**RTX_3060_TI.__dict__, "reasons": 0x40, "temperature": 70})]
    )
    reading = probe("desktop-rtx3060ti", hot).sample()
    assert (
        reading.gpus[0].thermal_throttling
        and "hw_thermal_slowdown" in reading.gpus[0].throttle_reasons
    )
    assert reading.thermal_state == 1.0 and reading.thermal_throttling


def test_deprecated_throttle_call_is_the_fallback() -> None:
    old = FakeNvml(
        [RTX_3060_TI.__class__(**{**RTX_3060_TI.__dict__, "not_supported": {"clock_events"}})]
    )
    probe("desktop-rtx3060ti", old).sample()
    assert "clock_events" in old.calls and "throttle_reasons" in old.calls


# --- change detection and degradation -----------------------------------------------------


def test_gpu_removed_gives_exactly_one_change() -> None:
    nvml = FakeNvml([A100_40GB, RTX_4090])
    p = probe("server-two-gpus", nvml)
    first = p.snapshot()
    assert not first.changed and p.snapshot().fingerprint == first.fingerprint
    nvml.gpus.pop()
    changed = p.snapshot()
    assert changed.changed and changed.previous_fingerprint == first.fingerprint
    assert not p.snapshot().changed  # one event, not one per sample


def test_gpu_lost_mid_run_is_a_change_and_sampling_goes_on() -> None:
    lost = RTX_3060_TI.__class__(**RTX_3060_TI.__dict__)
    p = probe("desktop-rtx3060ti", FakeNvml([lost]))
    first = p.snapshot()
    lost.lost = True
    reading = p.sample()
    assert reading.gpus == [] and any("lost" in m.reason for m in reading.missing)
    snap = p.snapshot()
    assert snap.changed and snap.inventory.gpus == [] and snap.fingerprint != first.fingerprint


def test_nvml_error_on_one_field_marks_it_missing() -> None:
    flaky = RTX_3060_TI.__class__(**RTX_3060_TI.__dict__)
    nvml = FakeNvml([flaky])

    def broken(h: object) -> int:
        raise pynvml.NVMLError_NoPermission()

    nvml.nvmlDeviceGetPowerUsage = broken  # type: ignore[method-assign]
    p = probe("desktop-rtx3060ti", nvml)
    p.snapshot()
    reading = p.sample()
    assert reading.gpus[0].power_watts is None
    assert any(m.part == "gpu0.power" and "Permission" in m.reason for m in reading.missing)


def test_no_driver_is_a_cpu_only_host_with_the_reason() -> None:
    snap = probe("desktop-rtx3060ti", FakeNvml([RTX_3060_TI], driver=False)).snapshot()
    assert snap.inventory.gpus == []
    assert any(m.part == "gpu" and "Driver Not Loaded" in m.reason for m in snap.missing)


def test_a_reading_stays_inside_the_message_bounds_on_a_host_with_many_sensors(
    tmp_path: Path,
) -> None:
    from shared.messages import MAX_SENSOR_NAME, MAX_TEMPERATURES, encode

    root = tmp_path / "host"
    shutil.copytree(HOSTS / "desktop-rtx3060ti", root)
    dev = root / "sys/class/hwmon/hwmon9"
    dev.mkdir()
    (dev / "name").write_text("many\n")
    for i in range(1, MAX_TEMPERATURES + 50):  # temp99 is read last (sorted by file name)
        (dev / f"temp{i}_input").write_text("90000\n" if i == 99 else "41000\n")
        (dev / f"temp{i}_label").write_text(f"{i:04d} {'long label ' * 20}\n")
    reading = probe(root).sample()
    assert len(reading.temperatures) == MAX_TEMPERATURES
    assert max(len(t.sensor) for t in reading.temperatures) == MAX_SENSOR_NAME
    assert decode(encode(reading), SensorReading) == reading  # publishable, and accepted
    # the thermal state saw every sensor, the hottest one past the list's cut included
    assert max(t.celsius for t in reading.temperatures) < 90
    assert reading.thermal_state == pytest.approx((90 - 40) / (95 - 40), abs=1e-3)


async def test_memory_limit_lowered_publishes_exactly_one_change(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(HOSTS / "container-v2", root)
    settings = Settings(sensor_interval_seconds=0.02, inventory_interval_seconds=0.02)
    p = HardwareProbe(settings, "c1", root=root, stats=ProcfsStats(root), nvml=NvmlReader(None))
    bus = MemoryBus()
    svc = ObserverService(bus, p, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.sleep(0.15)
    limit = root / "sys/fs/cgroup/system.slice/docker-abc123.scope/memory.max"
    # replaced in one step, as the kernel does: write_text truncates first, and a slow reader
    # (qemu in make test-arm) can see the empty file in between: a second, spurious change
    limit.with_suffix(".new").write_text("1073741824\n")
    limit.with_suffix(".new").replace(limit)
    await asyncio.sleep(0.3)
    stop.set()
    await task
    reader = bus.consumer([settings.topics.hardware], "r")
    await reader.start()
    snaps = [decode(r.value, HardwareSnapshot) for r in await reader.getmany(timeout=0.1)]
    assert [s.changed for s in snaps] == [False, True]
    assert snaps[1].inventory.memory_limit_bytes == GIB
    assert svc.stats["sensors_published"] >= 5 and svc.stats["hardware_changes"] == 1


async def test_a_failing_sample_does_not_stop_the_observer() -> None:
    settings = Settings(sensor_interval_seconds=0.01)
    p = probe("pi4-healthy")
    calls = 0
    real = p.sample

    def sometimes_broken() -> SensorReading:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise OSError("sensor vanished")
        return real()

    p.sample = sometimes_broken  # type: ignore[method-assign]
    svc = ObserverService(MemoryBus(), p, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.sleep(0.2)
    stop.set()
    await task
    assert svc.stats["sample_errors"] >= 2 and svc.stats["sensors_published"] >= 2


# --- this machine, live -------------------------------------------------------------------


def test_live_inventory_matches_psutil_and_cgroups() -> None:
    p = HardwareProbe(S, "live", nvml=NvmlReader(load_pynvml()))
    snap = p.snapshot()
    inv = snap.inventory
    assert inv.logical_cores == psutil.cpu_count(logical=True)
    assert inv.memory_total_bytes == psutil.virtual_memory().total
    assert inv.memory_limit_bytes == sysfs.cgroup_memory_limit(Path("/"))
    assert p.snapshot().fingerprint == snap.fingerprint
    reading = p.sample()
    assert 0 <= reading.thermal_state <= 1 and reading.memory_available_bytes > 0


def test_qas_hardware_json_is_stable_across_runs() -> None:
    cmd = [sys.executable, "-m", "app.cli", "hardware", "--json"]
    root = Path(__file__).resolve().parents[3]
    outs = [json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=root).stdout)
            for _ in range(2)]  # fmt: skip
    fps = {o["hardware"]["fingerprint"] for o in outs}
    assert len(fps) == 1 and re.fullmatch("[0-9a-f]{64}", fps.pop())
    inv = outs[0]["hardware"]["inventory"]
    assert inv["logical_cores"] == os.cpu_count()
    assert inv["memory_total_bytes"] == psutil.virtual_memory().total
    table = subprocess.run(cmd[:-1], capture_output=True, text=True, check=True, cwd=root).stdout
    assert "fingerprint" in table and "thermal state" in table and "not read: gpu" in table
