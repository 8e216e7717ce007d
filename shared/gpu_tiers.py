"""GPU facts that NVML does not give directly: CUDA cores per SM, and the seed's tier.

Tier rule (by CUDA cores when known, else by memory), documented in docs/observer.md:

    integrated : an SoC GPU (Tegra/Jetson/Orin in the name) or under 2 GiB of memory
    low_end    : < 2048 cores        (or < 4 GiB)
    mid_range  : < 6144 cores        (or < 12 GiB)    e.g. RTX 3060 Ti, 4864 cores
    high_end   : < 10240 cores       (or < 20 GiB)    e.g. RTX 3080, 8704 cores
    ultra      : < 16384 cores       (or < 40 GiB)    e.g. RTX 3090, 10496 cores
    extreme    : >= 16384 cores      (or >= 40 GiB)   e.g. RTX 4090, H100
"""

from __future__ import annotations

from typing import Literal

GIB = 1 << 30

# FP32 CUDA cores per SM by compute capability (CUDA C Programming Guide, "Arithmetic
# Instructions" throughput table).
CORES_PER_SM: dict[tuple[int, int], int] = {
    (3, 0): 192,
    (3, 2): 192,
    (3, 5): 192,
    (3, 7): 192,
    (5, 0): 128,
    (5, 2): 128,
    (5, 3): 128,
    (6, 0): 64,
    (6, 1): 128,
    (6, 2): 128,
    (7, 0): 64,
    (7, 2): 64,
    (7, 5): 64,
    (8, 0): 64,
    (8, 6): 128,
    (8, 7): 128,
    (8, 9): 128,
    (9, 0): 128,
    (10, 0): 128,
    (10, 1): 128,
    (12, 0): 128,
    (12, 1): 128,
}

Tier = Literal["integrated", "low_end", "mid_range", "high_end", "ultra", "extreme"]


def cores_from_sms(sm_count: int, major: int, minor: int) -> int | None:
    per_sm = CORES_PER_SM.get((major, minor))
    return None if per_sm is None else per_sm * sm_count


def gpu_tier(name: str, memory_bytes: int, cuda_cores: int | None) -> Tier:
    lowered = name.lower()
    if any(soc in lowered for soc in ("tegra", "jetson", "orin")) or memory_bytes < 2 * GIB:
        return "integrated"
    if cuda_cores:
        bounds: tuple[tuple[int, Tier], ...] = (
            (2048, "low_end"),
            (6144, "mid_range"),
            (10240, "high_end"),
            (16384, "ultra"),
        )
        value = cuda_cores
    else:
        bounds = (
            (4 * GIB, "low_end"),
            (12 * GIB, "mid_range"),
            (20 * GIB, "high_end"),
            (40 * GIB, "ultra"),
        )
        value = memory_bytes
    for bound, tier in bounds:
        if value < bound:
            return tier
    return "extreme"


def memory_bandwidth_gbps(bus_width_bits: int, max_memory_clock_mhz: float) -> float:
    """Peak bandwidth as NVML reports the clocks: bus bytes x clock x 2 (double data rate).

    NVML's max memory clock for GDDR6/6X is the half-rate clock (RTX 3060 Ti: 7001 MHz,
    256-bit -> 448 GB/s, the seed's figure); HBM reports its real clock (same formula).
    """
    return bus_width_bits / 8 * max_memory_clock_mhz * 2 / 1000.0
