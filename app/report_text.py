"""Human-readable tables for the terminal."""

from __future__ import annotations

from shared.messages import HardwareSnapshot, SensorReading
from shared.topics import TABLE

GIB = 1 << 30


def hardware_table(snap: HardwareSnapshot, reading: SensorReading) -> str:
    inv, sc = snap.inventory, snap.scores
    rows: list[tuple[str, str]] = [
        ("host", snap.host_id),
        ("fingerprint", snap.fingerprint),
        ("cpu", f"{inv.cpu_model} ({inv.arch})"),
        (
            "cores",
            f"{inv.logical_cores} logical, {inv.physical_cores or '?'} physical"
            + (f", cgroup quota {inv.cpu_quota_cores:g}" if inv.cpu_quota_cores else ""),
        ),
        ("cpu max freq", f"{inv.cpu_max_freq_mhz:.0f} MHz" if inv.cpu_max_freq_mhz else "unknown"),
        (
            "memory",
            f"{inv.memory_total_bytes / GIB:.2f} GiB"
            + (
                f", cgroup limit {inv.memory_limit_bytes / GIB:.2f} GiB"
                if inv.memory_limit_bytes
                else ""
            ),
        ),
    ]
    if inv.board_model:
        rows.append(("board", inv.board_model))
    for g in inv.gpus:
        rows.append(
            (
                f"gpu{g.index}",
                f"{g.name}, {g.memory_total_bytes / GIB:.1f} GiB, {g.cuda_cores or '?'} CUDA cores "
                f"({g.cuda_cores_source}), {g.sm_count or '?'} SMs, tier {g.tier}"
                + (f", {g.memory_bandwidth_gbps:.0f} GB/s" if g.memory_bandwidth_gbps else ""),
            )
        )
    if not inv.gpus:
        rows.append(("gpus", "none"))
    rows += [
        ("gpu / ram / cpu score", f"{sc.gpu_score:.3f} / {sc.ram_score:.3f} / {sc.cpu_score:.3f}"),
        ("entanglement strength", f"{sc.entanglement_strength:.3f}"),
        (
            "tensor pool (raw)",
            f"+{sc.positive_channel:.3f}  -{sc.negative_channel:.3f}  0:{sc.zero_channel:.3f}",
        ),
        (
            "tensor pool (normalised)",
            f"+{sc.positive_norm:.3f}  -{sc.negative_norm:.3f}  0:{sc.zero_norm:.3f}",
        ),
        ("harmonic coherence", f"{sc.harmonic_coherence:.3f}"),
        ("coherence / entropy", f"{sc.coherence_score:.3f} / {sc.entropy_value:.3f}"),
        ("cpu utilisation", f"{reading.cpu_utilization_ratio:.0%}"),
        ("memory available", f"{reading.memory_available_bytes / GIB:.2f} GiB"),
        (
            "thermal state",
            f"{reading.thermal_state:.2f}"
            + (" (throttling for heat)" if reading.thermal_throttling else ""),
        ),
    ]
    for t in reading.temperatures:
        rows.append((f"temp {t.sensor}", f"{t.celsius:.1f} C"))
    for m in snap.missing + reading.missing:
        rows.append((f"not read: {m.part}", m.reason))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def topics_markdown() -> str:
    """The topic table in docs/operations.md, from the one topic table."""
    rows = ["| topic | producers | consumers | content |", "|---|---|---|---|"]
    for spec in TABLE:
        name = f"`{spec.default}`" + (" (compacted)" if spec.compacted else "")
        rows.append(f"| {name} | {', '.join(spec.producers)} | "
                    f"{', '.join(spec.consumers) or '-'} | {spec.content} |")  # fmt: skip
    return "\n".join(rows)
