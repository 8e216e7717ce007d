"""The seed's capability scores, made bounded.

Seed formulas (README "Hardware Observer Detection" and "Tensor Pool Harmonization"):

    gpu_score   = tier_weight * (gpu_mem_gb / MAX_GPU_MEMORY_GB + cuda_cores / MAX_CUDA_CORES) / 2
    ram_score   = min(1, ram_gb / MAX_RAM_GB)
    cpu_score   = (cpu_cores / MAX_CPU_CORES + cpu_freq_mhz / MAX_CPU_FREQ_MHZ) / 2
    entanglement_strength = (gpu_score + ram_score + cpu_score) / 3
    positive = gpu_mem_gb * cuda_cores / 10000;  negative = ram_gb / 32;  zero = cpu_cores / 16
    coherence_score = 0.6 * entanglement + 0.4 * harmonic_coherence;  entropy_value = 1 - coherence

Corrections (PRODUCT.md section 3): every ratio is clamped to [0, 1] so a machine bigger than
the reference (an 80 GB H100, 64 cores) saturates instead of leaving the range; the raw channels
are unbounded (an RTX 3060 Ti gives 3.89), so harmonic coherence averages each channel divided by
its reference maximum (24*16384/10000 = 39.32, 128/32 = 4, 32/16 = 2), clamped to [0, 1].
The seed's ``harmonic = (positive + negative + zero) / 3`` can exceed 1 and make entropy negative.

GPU memory, RAM: GiB (2**30 bytes). RAM and cores are the *effective* ones (container limits).
With several GPUs, gpu_score is the best single GPU (the seed's formula is per GPU) and the
positive channel sums them (pooled capacity), still clamped by its normalisation.
"""

from __future__ import annotations

from shared.config import ScoreConstants
from shared.messages import GpuInfo, Inventory, Scores

GIB = float(1 << 30)


def _unit(x: float) -> float:
    return min(1.0, max(0.0, x))


def gpu_score(gpu: GpuInfo, c: ScoreConstants) -> float:
    weight = c.gpu_tier_weights.get(gpu.tier, 0.0)
    mem = _unit(gpu.memory_total_bytes / GIB / c.max_gpu_memory_gb)
    cores = _unit((gpu.cuda_cores or 0) / c.max_cuda_cores)
    return _unit(weight * (mem + cores) / 2.0)


def compute_scores(inv: Inventory, c: ScoreConstants) -> Scores:
    ram_gb = inv.effective_memory_bytes / GIB
    cores = inv.effective_cores
    g = max((gpu_score(gpu, c) for gpu in inv.gpus), default=0.0)
    r = _unit(ram_gb / c.max_ram_gb)
    cpu = (
        _unit(cores / c.max_cpu_cores) + _unit((inv.cpu_max_freq_mhz or 0.0) / c.max_cpu_freq_mhz)
    ) / 2
    entanglement = (g + r + cpu) / 3.0

    positive = sum(gpu.memory_total_bytes / GIB * (gpu.cuda_cores or 0) for gpu in inv.gpus)
    positive /= c.positive_divisor
    negative = ram_gb / c.negative_divisor_gb
    zero = cores / c.zero_divisor_cores
    pos_n = _unit(positive / (c.max_gpu_memory_gb * c.max_cuda_cores / c.positive_divisor))
    neg_n = _unit(negative / (c.max_ram_gb / c.negative_divisor_gb))
    zero_n = _unit(zero / (c.max_cpu_cores / c.zero_divisor_cores))
    harmonic = (pos_n + neg_n + zero_n) / 3.0
    coherence = _unit(0.6 * entanglement + 0.4 * harmonic)
    return Scores(
        gpu_score=g,
        ram_score=r,
        cpu_score=_unit(cpu),
        entanglement_strength=_unit(entanglement),
        positive_channel=positive,
        negative_channel=negative,
        zero_channel=zero,
        positive_norm=pos_n,
        negative_norm=neg_n,
        zero_norm=zero_n,
        harmonic_coherence=_unit(harmonic),
        coherence_score=coherence,
        entropy_value=_unit(1.0 - coherence),
    )


def seed_gpu_score(memory_gb: float, cuda_cores: float, tier_weight: float) -> float:
    """The seed's formula without clamping, kept to show the seed's printed 0.3 is 0.189."""
    return tier_weight * (memory_gb / 24.0 + cuda_cores / 16384.0) / 2.0
