"""The seed's capability scores, including its RTX 3060 Ti worked example (corrected)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import ScoreConstants
from shared.fingerprint import fingerprint
from shared.gpu_tiers import cores_from_sms, gpu_tier, memory_bandwidth_gbps
from shared.messages import GpuInfo
from shared.scores import compute_scores, seed_gpu_score
from tests.support.factories import GIB, RTX_3060_TI, inventory, reference_host

C = ScoreConstants()


def test_rtx_3060_ti_worked_example() -> None:
    seed_printed = 0.3  # the seed: "gpu_score = 0.6 * (8.0/24.0 + 4864/16384) / 2.0  # ≈ 0.3"
    actual = seed_gpu_score(8.0, 4864, 0.6)
    assert actual == pytest.approx(0.189, abs=5e-4)
    assert abs(actual - seed_printed) > 0.1  # the seed's figure is wrong; we use the formula
    s = compute_scores(reference_host(), C)
    assert s.gpu_score == pytest.approx(0.189, abs=5e-4)
    assert s.positive_channel == pytest.approx(3.89, abs=5e-3)  # the seed's raw value
    assert s.positive_norm == pytest.approx(3.89 / 39.32, abs=1e-3)  # normalised by 24*16384/1e4
    assert s.ram_score == 0.25 and s.negative_channel == 1.0 and s.negative_norm == 0.25
    assert s.cpu_score == pytest.approx((8 / 32 + 4500 / 5000) / 2)
    assert s.zero_channel == 0.5 and s.zero_norm == 0.25
    assert s.entanglement_strength == pytest.approx((s.gpu_score + 0.25 + s.cpu_score) / 3)
    assert s.coherence_score == pytest.approx(
        0.6 * s.entanglement_strength + 0.4 * s.harmonic_coherence
    )
    # The seed's unnormalised harmonic coherence would be (3.89 + 1 + 0.5) / 3 = 1.80 > 1.
    assert s.harmonic_coherence <= 1.0 and s.entropy_value >= 0.0


def test_rtx_3060_ti_facts_from_nvml_style_inputs() -> None:
    assert cores_from_sms(38, 8, 6) == 4864
    assert memory_bandwidth_gbps(256, 7001) == pytest.approx(448.0, abs=0.1)
    assert gpu_tier(RTX_3060_TI.name, 8 * GIB, 4864) == "mid_range"


@pytest.mark.parametrize(
    ("name", "mem_gib", "cores", "tier"),
    [
        ("NVIDIA Jetson Orin", 8, 1024, "integrated"),
        ("NVIDIA GeForce GT 1030", 2, 384, "low_end"),
        ("NVIDIA GeForce RTX 3080", 10, 8704, "high_end"),
        ("NVIDIA GeForce RTX 3090", 24, 10496, "ultra"),
        ("NVIDIA GeForce RTX 4090", 24, 16384, "extreme"),
        ("NVIDIA H100 80GB HBM3", 80, 16896, "extreme"),
        ("Unknown board", 16, None, "high_end"),
    ],
)
def test_tier_rule(name: str, mem_gib: int, cores: int | None, tier: str) -> None:
    assert gpu_tier(name, mem_gib * GIB, cores) == tier


big_gpu = st.builds(
    GpuInfo,
    index=st.just(0),
    name=st.just("g"),
    memory_total_bytes=st.integers(0, 200 * GIB),
    cuda_cores=st.integers(0, 50_000) | st.none(),
    tier=st.sampled_from(["integrated", "low_end", "mid_range", "high_end", "ultra", "extreme"]),
)


@given(
    gpus=st.lists(big_gpu, max_size=8),
    cores=st.integers(1, 512),
    ram=st.integers(1, 4096 * GIB),
    freq=st.floats(0, 10_000) | st.none(),
    quota=st.floats(0.01, 512) | st.none(),
)
def test_every_bounded_score_stays_in_unit_range(gpus, cores, ram, freq, quota) -> None:  # type: ignore[no-untyped-def]
    inv = inventory(
        gpus=gpus,
        logical_cores=cores,
        memory_total_bytes=ram,
        cpu_max_freq_mhz=freq,
        cpu_quota_cores=quota,
    )
    s = compute_scores(inv, C)
    for name in (
        "gpu_score",
        "ram_score",
        "cpu_score",
        "entanglement_strength",
        "positive_norm",
        "negative_norm",
        "zero_norm",
        "harmonic_coherence",
        "coherence_score",
        "entropy_value",
    ):
        assert 0.0 <= getattr(s, name) <= 1.0, name


def test_fingerprint_ignores_nothing_stable_and_changes_with_limits() -> None:
    a = reference_host()
    assert fingerprint(a) == fingerprint(reference_host())
    assert len(fingerprint(a)) == 64
    assert fingerprint(inventory(gpus=[])) != fingerprint(a)  # GPU lost
    assert fingerprint(inventory(gpus=[RTX_3060_TI], memory_limit_bytes=8 * GIB)) != fingerprint(a)
    assert fingerprint(inventory(gpus=[RTX_3060_TI], cpu_quota_cores=2.0)) != fingerprint(a)
