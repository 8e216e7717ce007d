"""shared/config.py: the seed's constants as defaults; invalid values rejected on decode."""

from __future__ import annotations

import msgspec
import pytest

from shared.config import (
    ApplierConstants,
    DecisionConstants,
    ScoreConstants,
    Settings,
    ThermalConstants,
)
from shared.topics import Topics


def test_quantum_chamber_settings_are_the_seeds() -> None:
    d = DecisionConstants()
    assert (d.quantum_coherence_threshold, d.observer_effect_threshold,
            d.tensor_harmonic_threshold) == (0.7, 0.5, 0.6)  # fmt: skip
    assert (d.min_scaling_factor, d.max_scaling_factor) == (0.1, 3.0)
    assert (d.min_memory_adjustment, d.max_memory_adjustment) == (0.1, 2.0)
    assert (d.low_value_threshold, d.high_value_threshold, d.high_volatility_threshold) == (
        0.3, 0.8, 0.8)  # fmt: skip
    assert (d.hot_threshold, d.very_hot_threshold) == (0.8, 0.9)


def test_hardware_observer_settings_are_the_seeds() -> None:
    s = ScoreConstants()
    assert (s.max_gpu_memory_gb, s.max_cuda_cores, s.max_ram_gb) == (24.0, 16384.0, 128.0)
    assert (s.max_cpu_cores, s.max_cpu_freq_mhz) == (32.0, 5000.0)
    assert s.gpu_tier_weights == {"integrated": 0.1, "low_end": 0.3, "mid_range": 0.6,
                                  "high_end": 0.8, "ultra": 0.9, "extreme": 1.0}  # fmt: skip
    assert (s.positive_divisor, s.negative_divisor_gb, s.zero_divisor_cores) == (
        10000.0, 32.0, 16.0)  # fmt: skip
    assert ScoreConstants().gpu_tier_weights is not s.gpu_tier_weights  # no shared mutable default


def test_other_defaults() -> None:
    t = ThermalConstants()
    assert (t.idle_celsius, t.cpu_throttle_celsius, t.gpu_throttle_celsius,
            t.pi_throttle_celsius) == (40.0, 95.0, 83.0, 80.0)  # fmt: skip
    a = ApplierConstants()
    assert (a.confidence_threshold, a.max_decision_age_seconds) == (0.7, 30.0)
    s = Settings()
    assert s.topics == Topics() and s.decision == DecisionConstants() and s.host_id == ""
    assert (s.sensor_interval_seconds, s.inventory_interval_seconds) == (1.0, 10.0)


def test_settings_round_trip_through_json() -> None:
    s = Settings(host_id="h1", decision=DecisionConstants(hot_threshold=0.75))
    assert msgspec.json.decode(msgspec.json.encode(s), type=Settings) == s


def test_partial_documents_keep_the_other_defaults() -> None:
    s = msgspec.json.decode(b'{"decision": {"tolerance": 0.1}}', type=Settings)
    assert s.decision.tolerance == 0.1 and s.decision.max_step == DecisionConstants().max_step


@pytest.mark.parametrize(("kind", "doc"), [
    (DecisionConstants, b'{"hot_threshold": 1.5}'),        # a ratio above 1
    (DecisionConstants, b'{"low_value_threshold": -0.1}'),
    (DecisionConstants, b'{"max_scaling_factor": 0}'),     # must be positive
    (DecisionConstants, b'{"bytes_per_item": 0}'),
    (DecisionConstants, b'{"tolerance": -1}'),
    (DecisionConstants, b'{"tolerance": "big"}'),          # wrong type
    (ScoreConstants, b'{"max_ram_gb": -128}'),
    (ApplierConstants, b'{"confidence_threshold": 2}'),
    (ApplierConstants, b'{"max_decision_age_seconds": 0}'),
    (Settings, b'{"sensor_interval_seconds": 0}'),
    (Settings, b'{"applier": {"confidence_threshold": -0.5}}'),
])  # fmt: skip
def test_invalid_values_are_rejected_on_decode(kind: type, doc: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(doc, type=kind)


def test_constants_are_frozen() -> None:
    with pytest.raises(AttributeError):
        DecisionConstants().hot_threshold = 0.1  # type: ignore[misc]


def test_settings_from_toml_sets_what_it_names_and_keeps_every_other_default() -> None:
    from shared.config import settings_from_toml

    s = settings_from_toml(
        "sensor_interval_seconds = 2.5\n[decision]\nscale_down_window_seconds = 5.0\n"
        "[applier]\nmax_apply_after_seconds = 10\n"
    )
    assert s.sensor_interval_seconds == 2.5
    assert s.decision.scale_down_window_seconds == 5.0
    assert s.applier.max_apply_after_seconds == 10.0
    assert s.decision.tolerance == DecisionConstants().tolerance
    assert s.scores == ScoreConstants() and s.topics == Topics()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[decision]\nscale_down_windw_seconds = 5\n", "unknown setting 'decision.scale_down_windw_seconds'"),
        ("sensor_intervl = 1\n", "unknown setting 'sensor_intervl'"),
        ("[decision]\nscale_down_window_seconds = -1\n", "$.decision.scale_down_window_seconds"),
        ("[applier\n", "not TOML"),
        ("topics = 3\n", "$.topics"),
    ],
)
def test_settings_from_toml_refuses_what_is_not_settings(text: str, needle: str) -> None:
    from shared.config import SettingsError, settings_from_toml

    with pytest.raises(SettingsError) as err:
        settings_from_toml(text)
    assert needle in str(err.value)
