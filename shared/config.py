"""Configuration: plain, frozen msgspec Structs with the seed's constants as defaults.

Nothing here reads the environment; the CLI does that and passes values in.
"""

from __future__ import annotations

import tomllib
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct, field

from shared.topics import Topics

Positive = Annotated[float, Meta(gt=0.0)]
Ratio = Annotated[float, Meta(ge=0.0, le=1.0)]


class ScoreConstants(Struct, frozen=True, kw_only=True):
    """The seed's 'Hardware Observer Settings'."""

    max_gpu_memory_gb: Positive = 24.0  # RTX 4090
    max_cuda_cores: Positive = 16384.0  # RTX 4090
    max_ram_gb: Positive = 128.0
    max_cpu_cores: Positive = 32.0
    max_cpu_freq_mhz: Positive = 5000.0
    gpu_tier_weights: dict[str, float] = field(
        default_factory=lambda: {
            "integrated": 0.1,
            "low_end": 0.3,
            "mid_range": 0.6,
            "high_end": 0.8,
            "ultra": 0.9,
            "extreme": 1.0,
        }
    )
    # The seed's raw channel divisors.
    positive_divisor: Positive = 10000.0
    negative_divisor_gb: Positive = 32.0
    zero_divisor_cores: Positive = 16.0


class ThermalConstants(Struct, frozen=True, kw_only=True):
    """thermal_state = (T - idle) / (throttle - idle) for the hottest component, clamped."""

    idle_celsius: float = 40.0
    cpu_throttle_celsius: float = 95.0  # used when a sensor reports no high/critical point
    gpu_throttle_celsius: float = 83.0  # typical NVIDIA slowdown onset when NVML gives none
    pi_throttle_celsius: float = 80.0  # Pi 4 firmware starts capping at 80 C (85 C hard)


class DecisionConstants(Struct, frozen=True, kw_only=True):
    """The seed's 'Quantum Chamber Settings' and the stabiliser's knobs."""

    quantum_coherence_threshold: Ratio = 0.7
    observer_effect_threshold: Ratio = 0.5
    tensor_harmonic_threshold: Ratio = 0.6
    min_scaling_factor: Positive = 0.1
    max_scaling_factor: Positive = 3.0
    min_memory_adjustment: Positive = 0.1
    max_memory_adjustment: Positive = 2.0
    # Response above the normal band (see docs/decision.md for why these numbers).
    entropy_gain: float = 0.5
    profit_gain: float = 0.8
    thermal_cut: Ratio = 0.3
    thermal_safety_state: Ratio = 0.9  # at or above: factor never above 1.0
    memory_pressure_floor: Ratio = 0.10  # available/effective RAM below this: factor <= 1.0
    # Precision rule thresholds.
    low_value_threshold: Ratio = 0.3
    high_value_threshold: Ratio = 0.8
    high_volatility_threshold: Ratio = 0.8
    hot_threshold: Ratio = 0.8
    very_hot_threshold: Ratio = 0.9
    # Sizing.
    memory_budget_share: Ratio = 0.25  # of effective RAM at memory_adjustment 1.0
    batch_memory_share: Ratio = 0.8  # the seed's 80 % of free GPU memory (RAM on CPU hosts)
    bytes_per_item: Annotated[int, Meta(ge=1)] = 4096  # at 32-bit precision
    max_batch_size: Annotated[int, Meta(ge=1)] = 65536
    # Stability ("quantum error correction").
    tolerance: Annotated[float, Meta(ge=0.0)] = 0.05
    max_step: Positive = 0.5
    scale_down_window_seconds: Annotated[float, Meta(ge=0.0)] = 30.0
    # EWMA time constant for market entropy and profit (not thermal: safety acts at once).
    smoothing_seconds: Annotated[float, Meta(ge=0.0)] = 1.0
    staleness_seconds: Positive = 5.0
    # An input never received counts as mid-band (0.5) at this confidence: QAS must still act
    # on the hardware (thermal safety) when no engine publishes market signals.
    missing_input_confidence: Ratio = 0.9
    max_jitter_seconds: Annotated[float, Meta(ge=0.0)] = 2.0
    # Engine feedback: target tracking on the engine's latency objective and memory limit
    # (shared/feedback.py). Ignored until an engine reports on qas.feedback.
    latency_target_share: Ratio = 0.9  # aim p99 at 90 % of the objective
    latency_headroom_share: Ratio = 0.8  # p99 below 80 % of the objective: the cap may rise
    max_feedback_cut: Ratio = 0.5  # one report lowers the factor cap to no less than half
    max_feedback_rise: Annotated[float, Meta(ge=1.0)] = 1.25  # and raises it by at most 25 %
    # latency cuts bring the factor (workers, budget) down to this at most (the batch: cost model)
    latency_factor_floor: Ratio = 0.5
    memory_high_share: Ratio = 0.85  # resident memory above this share of the limit: cut
    memory_target_share: Ratio = 0.75  # the cut aims here
    memory_low_share: Ratio = 0.6  # below this share the memory caps are lifted a step
    memory_min_budget_share: Ratio = 0.05  # memory cuts keep at least this share of the limit
    feedback_expiry_seconds: Positive = 30.0  # an older report no longer counts


class ApplierConstants(Struct, frozen=True, kw_only=True):
    confidence_threshold: Ratio = 0.7
    # The event-time window a decision must be inside (replay protection): older, or further
    # ahead of this host's clock, is rejected.
    max_decision_age_seconds: Positive = 30.0
    max_decision_future_seconds: Positive = 5.0
    # A decision's apply_after_seconds (per-host jitter) is honoured up to this long at most.
    max_apply_after_seconds: Annotated[float, Meta(ge=0.0)] = 30.0


class Settings(Struct, frozen=True, kw_only=True):
    host_id: str = ""  # empty: the hostname
    topics: Topics = Topics()
    scores: ScoreConstants = ScoreConstants()
    thermal: ThermalConstants = ThermalConstants()
    decision: DecisionConstants = DecisionConstants()
    applier: ApplierConstants = ApplierConstants()
    sensor_interval_seconds: Positive = 1.0
    # (host, symbol) pairs whose tick estimators the decider keeps; least recently seen evicted
    max_tracked_symbols: Annotated[int, Meta(ge=1)] = 4096
    # Hosts the decider keeps state for (host_id comes from the bus: untrusted); least recently
    # seen evicted and counted
    max_tracked_hosts: Annotated[int, Meta(ge=1)] = 4096
    # A host (and its tick estimators) with no input for this long is forgotten: its state, its
    # /metrics series. A host that comes back starts from its next hardware snapshot.
    host_state_max_age_seconds: Positive = 900.0
    # Temperature series per host on the applier's /metrics (sensor names come from the bus);
    # the rest are folded into sensor="other".
    max_sensor_series_per_host: Annotated[int, Meta(ge=1)] = 64
    inventory_interval_seconds: Positive = 10.0


class SettingsError(ValueError):
    """A settings file that does not describe Settings: one line naming the key."""


def settings_from_toml(text: str) -> Settings:
    """Settings from TOML text; what it leaves out keeps its default. Sections are the nested
    structs (``[decision]``, ``[applier]``, ...). An unknown key is an error, not ignored: a
    misspelt ``scale_down_windw_seconds`` must not silently leave the default in force."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"not TOML: {exc}") from None
    _known_keys(data, Settings, "")
    try:
        return msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(str(exc)) from None


def _known_keys(data: dict[str, Any], kind: type[Struct], where: str) -> None:
    fields = {f.name: f.type for f in msgspec.structs.fields(kind)}
    for key, value in data.items():
        if key not in fields:
            raise SettingsError(f"unknown setting '{where}{key}' (known here: {', '.join(fields)})")
        inner = fields[key]
        if isinstance(value, dict) and isinstance(inner, type) and issubclass(inner, Struct):
            _known_keys(value, inner, f"{where}{key}.")
