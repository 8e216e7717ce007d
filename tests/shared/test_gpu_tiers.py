"""shared/gpu_tiers.py: CUDA cores from SMs, the seed's GPU tier rule, peak bandwidth."""

from __future__ import annotations

import pytest

from shared.gpu_tiers import GIB, cores_from_sms, gpu_tier, memory_bandwidth_gbps


@pytest.mark.parametrize(("sms", "cc", "cores"), [
    (38, (8, 6), 4864),    # RTX 3060 Ti
    (68, (8, 6), 8704),    # RTX 3080
    (82, (8, 6), 10496),   # RTX 3090
    (128, (8, 9), 16384),  # RTX 4090
    (108, (8, 0), 6912),   # A100
    (132, (9, 0), 16896),  # H100 SXM
])  # fmt: skip
def test_cores_from_sms(sms: int, cc: tuple[int, int], cores: int) -> None:
    assert cores_from_sms(sms, *cc) == cores


def test_unknown_compute_capability_gives_none() -> None:
    assert cores_from_sms(10, 1, 0) is None


@pytest.mark.parametrize(("name", "mem_gib", "cores", "tier"), [
    ("NVIDIA Jetson Orin Nano", 8, 1024, "integrated"),
    ("Tegra X1", 4, 256, "integrated"),
    ("Some GPU", 1, None, "integrated"),       # under 2 GiB
    ("GT 1030", 2, 384, "low_end"),
    ("RTX 3060 Ti", 8, 4864, "mid_range"),
    ("RTX 3080", 10, 8704, "high_end"),
    ("A100", 40, 6912, "high_end"),            # by cores when known, not memory
    ("RTX 3090", 24, 10496, "ultra"),
    ("RTX 4090", 24, 16384, "extreme"),
    ("H100", 80, 16896, "extreme"),
    ("unknown", 3, None, "low_end"),           # by memory when cores are unknown
    ("unknown", 4, None, "mid_range"),
    ("unknown", 12, None, "high_end"),
    ("unknown", 20, None, "ultra"),
    ("unknown", 40, None, "extreme"),
])  # fmt: skip
def test_tier_rule(name: str, mem_gib: int, cores: int | None, tier: str) -> None:
    assert gpu_tier(name, mem_gib * GIB, cores) == tier


def test_core_bounds_are_exclusive() -> None:
    bounds = [(2047, "low_end"), (2048, "mid_range"), (6143, "mid_range"), (6144, "high_end"),
              (10239, "high_end"), (10240, "ultra"), (16383, "ultra"), (16384, "extreme")]  # fmt: skip
    assert [gpu_tier("g", 8 * GIB, c) for c, _ in bounds] == [t for _, t in bounds]


def test_bandwidth_is_the_seeds_figure_for_a_3060_ti() -> None:
    assert memory_bandwidth_gbps(256, 7001.0) == pytest.approx(448.064)
    assert memory_bandwidth_gbps(5120, 1593.0) == pytest.approx(2039.04)  # A100 80GB HBM2e
