"""shared/hoststate.py: what the decider remembers per host, and the DecisionInputs it gives."""

from __future__ import annotations

from shared.hoststate import NEUTRAL, HostState
from shared.messages import GpuSensors, MarketEntropy, ProfitPotential
from shared.precision import platform_top_bits
from tests.support.factories import GIB, cpu_only_host, inventory, reference_host, sensors, snapshot


def test_missing_inputs_count_as_neutral() -> None:
    inp = HostState().inputs(now=1000.0, top_bits=80)
    assert NEUTRAL == 0.5
    assert (inp.market_entropy, inp.profit_potential, inp.thermal_state) == (0.5, 0.5, 0.0)
    assert inp.entropy_age_seconds is inp.profit_age_seconds is inp.sensors_age_seconds is None
    assert inp.fingerprint is None and inp.effective_memory_bytes == 0
    assert inp.effective_cores == 1.0 and inp.gpu_free_bytes is None
    assert not inp.hardware_changed and not inp.thermal_throttling


def test_values_and_ages_of_received_inputs() -> None:
    s = HostState(
        entropy=MarketEntropy(event_time=990.0, host_id="h1", value=0.9),
        profit=ProfitPotential(event_time=1003.0, host_id="h1", value=0.2),
        sensors=sensors(
            t=997.5, thermal_state=0.85, thermal_throttling=True, memory_available_bytes=3 * GIB
        ),
    )
    inp = s.inputs(now=1000.0, top_bits=80)
    assert (inp.market_entropy, inp.profit_potential, inp.thermal_state) == (0.9, 0.2, 0.85)
    assert inp.entropy_age_seconds == 10.0 and inp.sensors_age_seconds == 2.5
    assert inp.profit_age_seconds == 0.0  # from the future: never a negative age
    assert inp.thermal_throttling and inp.memory_available_bytes == 3 * GIB


def test_fingerprint_memory_and_cores_come_from_the_snapshot() -> None:
    inv = inventory(memory_limit_bytes=4 * GIB, cpu_quota_cores=1.5)
    snap = snapshot(inv)
    s = HostState()
    s.observe_hardware(snap)
    inp = s.inputs(now=1000.0, top_bits=64)
    assert inp.fingerprint == snap.fingerprint
    assert inp.effective_memory_bytes == 4 * GIB and inp.effective_cores == 1.5
    assert inp.coherence_score == snap.scores.coherence_score
    assert inp.harmonic_coherence == snap.scores.harmonic_coherence
    assert inp.top_precision_bits == 64


def test_gpu_free_memory_is_summed_over_gpus_that_report_it() -> None:
    gpus = [GpuSensors(index=0, memory_free_bytes=2 * GIB), GpuSensors(index=1),
            GpuSensors(index=2, memory_free_bytes=GIB)]  # fmt: skip
    s = HostState(sensors=sensors(gpus=gpus))
    assert s.inputs(1000.0, 80).gpu_free_bytes == 3 * GIB
    s.sensors = sensors(gpus=[GpuSensors(index=0)])
    assert s.inputs(1000.0, 80).gpu_free_bytes is None


def test_a_hardware_change_sets_pending_change() -> None:
    s = HostState()
    s.observe_hardware(snapshot(reference_host()))
    assert not s.pending_change  # the first snapshot is not a change
    s.observe_hardware(snapshot(reference_host(), t=1010.0))
    assert not s.pending_change  # same fingerprint
    s.observe_hardware(snapshot(cpu_only_host(), t=1020.0))  # the GPU is gone
    assert s.pending_change and s.inputs(1020.0, 80).hardware_changed
    assert s.hardware is not None and s.hardware.inventory == cpu_only_host()


def test_a_snapshot_flagged_changed_sets_pending_change() -> None:
    s = HostState()
    s.observe_hardware(snapshot(reference_host(), changed=True))
    assert s.pending_change


def test_top_bits_default_to_the_platform() -> None:
    assert HostState().inputs(1000.0).top_precision_bits == platform_top_bits()
