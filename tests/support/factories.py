"""Small builders for valid messages, so tests state only what they vary."""

from __future__ import annotations

from shared.config import ScoreConstants
from shared.fingerprint import fingerprint
from shared.messages import (
    DecisionInputs,
    GpuInfo,
    HardwareSnapshot,
    Inventory,
    SensorReading,
)
from shared.scores import compute_scores

GIB = 1 << 30

RTX_3060_TI = GpuInfo(
    index=0,
    name="NVIDIA GeForce RTX 3060 Ti",
    memory_total_bytes=8 * GIB,
    sm_count=38,
    cuda_cores=4864,
    cuda_cores_source="sm_table",
    compute_capability="8.6",
    memory_bus_width_bits=256,
    max_memory_clock_mhz=7001.0,
    memory_bandwidth_gbps=448.064,
    boost_clock_mhz=1665.0,
    tier="mid_range",
)


def inventory(**kw: object) -> Inventory:
    base: dict[str, object] = dict(
        cpu_model="Test CPU",
        logical_cores=8,
        physical_cores=8,
        cpu_max_freq_mhz=4500.0,
        memory_total_bytes=32 * GIB,
    )
    base.update(kw)
    return Inventory(**base)  # type: ignore[arg-type]


def reference_host() -> Inventory:
    """The seed's reference host: RTX 3060 Ti, 8 cores, 32 GB."""
    return inventory(gpus=[RTX_3060_TI])


def cpu_only_host() -> Inventory:
    """Like this CI machine: 2 cores, 24 GiB, no GPU, no cpufreq."""
    return inventory(
        logical_cores=2, physical_cores=2, cpu_max_freq_mhz=2600.0, memory_total_bytes=24 * GIB
    )


def snapshot(inv: Inventory, host: str = "h1", t: float = 1000.0, **kw: object) -> HardwareSnapshot:
    return HardwareSnapshot(
        event_time=t,
        host_id=host,
        fingerprint=fingerprint(inv),
        inventory=inv,
        scores=compute_scores(inv, ScoreConstants()),
        **kw,  # type: ignore[arg-type]
    )


def sensors(host: str = "h1", t: float = 1000.0, **kw: object) -> SensorReading:
    base: dict[str, object] = dict(
        event_time=t,
        host_id=host,
        cpu_utilization_ratio=0.2,
        memory_available_bytes=20 * GIB,
        thermal_state=0.2,
    )
    base.update(kw)
    return SensorReading(**base)  # type: ignore[arg-type]


def inputs_for(inv: Inventory, e: float, t: float, p: float, **kw: object) -> DecisionInputs:
    sc = compute_scores(inv, ScoreConstants())
    gpu_free = sum(g.memory_total_bytes for g in inv.gpus) * 0.9 if inv.gpus else None
    base: dict[str, object] = dict(
        market_entropy=e,
        thermal_state=t,
        profit_potential=p,
        entropy_age_seconds=0.0,
        profit_age_seconds=0.0,
        sensors_age_seconds=0.0,
        fingerprint=fingerprint(inv),
        coherence_score=sc.coherence_score,
        harmonic_coherence=sc.harmonic_coherence,
        effective_memory_bytes=inv.effective_memory_bytes,
        memory_available_bytes=int(inv.effective_memory_bytes * 0.7),
        effective_cores=inv.effective_cores,
        gpu_free_bytes=None if gpu_free is None else int(gpu_free),
    )
    base.update(kw)
    return DecisionInputs(**base)  # type: ignore[arg-type]
