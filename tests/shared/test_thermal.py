"""shared/thermal.py: thermal_state 0 at idle, 1 at the throttle point, clamped; heat throttling."""

from __future__ import annotations

import pytest

from shared.config import ThermalConstants
from shared.messages import GpuSensors, PiThrottle, Temperature
from shared.thermal import component_state, pi_heat_throttling, thermal_state

C = ThermalConstants()  # idle 40, CPU 95, GPU 83, Pi 80


def temp(c: float, throttle: float | None = None) -> Temperature:
    return Temperature(sensor="cpu", celsius=c, throttle_celsius=throttle)


def pi(**flags: bool) -> PiThrottle:
    names = ("under_voltage", "frequency_capped", "throttled", "soft_temp_limit")
    base = {n: False for n in names} | {f"{n}_since_boot": False for n in names}
    return PiThrottle(raw=0, **(base | flags))


@pytest.mark.parametrize(("celsius", "state"), [
    (20.0, 0.0), (40.0, 0.0), (67.5, 0.5), (95.0, 1.0), (110.0, 1.0),
])  # fmt: skip
def test_linear_from_idle_to_the_throttle_point_clamped(celsius: float, state: float) -> None:
    assert component_state(temp(celsius), 95.0, 40.0) == pytest.approx(state)


def test_the_sensors_own_throttle_point_wins() -> None:
    assert component_state(temp(70.0, throttle=70.0), 95.0, 40.0) == 1.0
    assert component_state(temp(55.0, throttle=70.0), 95.0, 40.0) == pytest.approx(0.5)


def test_a_throttle_point_at_or_below_idle_is_a_step() -> None:
    assert component_state(temp(30.0, throttle=35.0), 95.0, 40.0) == 0.0
    assert component_state(temp(36.0, throttle=35.0), 95.0, 40.0) == 1.0


def test_idle_host_reads_zero_and_no_sensor_reads_zero() -> None:
    assert thermal_state([temp(35.0)], [], None, C) == (0.0, False)
    assert thermal_state([], [], None, C) == (0.0, False)


def test_hottest_component_wins_with_defaults_by_kind() -> None:
    gpus = [GpuSensors(index=0, temperature_celsius=83.0), GpuSensors(index=1)]
    state, throttling = thermal_state([temp(67.5)], gpus, None, C)
    assert state == 1.0 and not throttling  # the GPU at its 83 C default
    state, _ = thermal_state([temp(67.5)], [GpuSensors(index=0, temperature_celsius=61.5)], None, C)
    assert state == pytest.approx(0.5)
    # on a Pi the CPU's default is the firmware's 80 C
    assert thermal_state([temp(60.0)], [], pi(), C)[0] == pytest.approx(0.5)


def test_heat_throttling_forces_one() -> None:
    gpu = GpuSensors(index=0, temperature_celsius=45.0, thermal_throttling=True)
    assert thermal_state([temp(41.0)], [gpu], None, C) == (1.0, True)
    assert thermal_state([temp(41.0)], [], pi(soft_temp_limit=True), C) == (1.0, True)


def test_pi_under_voltage_throttle_is_not_heat() -> None:
    assert not pi_heat_throttling(None)
    assert not pi_heat_throttling(pi())
    assert pi_heat_throttling(pi(throttled=True))
    assert pi_heat_throttling(pi(frequency_capped=True))
    assert not pi_heat_throttling(pi(throttled=True, under_voltage=True))
    assert pi_heat_throttling(pi(soft_temp_limit=True, under_voltage=True))
    assert not pi_heat_throttling(pi(throttled_since_boot=True))  # the past is not now
