"""thermal_state in [0, 1]: 0 at idle temperature, 1 at the throttle point of the hottest part.

For each temperature: (T - idle) / (throttle - idle), clamped, where throttle is the sensor's
own high/critical point when it reports one, else the configured default for its kind. The
state is the maximum over components, and 1.0 whenever hardware says it is throttling for heat
(an NVIDIA thermal clock-event reason, a Raspberry Pi soft temperature limit or a throttle
that is not explained by under-voltage).
"""

from __future__ import annotations

from shared.config import ThermalConstants
from shared.messages import GpuSensors, PiThrottle, Temperature


def component_state(t: Temperature, default_throttle: float, idle: float) -> float:
    ref = t.throttle_celsius if t.throttle_celsius is not None else default_throttle
    if ref <= idle:
        return 1.0 if t.celsius >= ref else 0.0
    return min(1.0, max(0.0, (t.celsius - idle) / (ref - idle)))


def pi_heat_throttling(flags: PiThrottle | None) -> bool:
    if flags is None:
        return False
    heat_capped = (flags.throttled or flags.frequency_capped) and not flags.under_voltage
    return flags.soft_temp_limit or heat_capped


def thermal_state(
    temperatures: list[Temperature],
    gpus: list[GpuSensors],
    pi: PiThrottle | None,
    c: ThermalConstants,
) -> tuple[float, bool]:
    """Returns (state, throttling_for_heat)."""
    throttling = pi_heat_throttling(pi) or any(g.thermal_throttling for g in gpus)
    default = c.pi_throttle_celsius if pi is not None else c.cpu_throttle_celsius
    states = [component_state(t, default, c.idle_celsius) for t in temperatures]
    states += [
        component_state(
            Temperature(sensor=f"gpu{g.index}", celsius=g.temperature_celsius),
            c.gpu_throttle_celsius,
            c.idle_celsius,
        )
        for g in gpus
        if g.temperature_celsius is not None
    ]
    if throttling:
        return 1.0, True
    return max(states, default=0.0), False
