"""HardwareProbe: the observer's blocking reads, in one place (callers run them off the loop).

``inventory()`` gives the stable facts, ``snapshot()`` the fingerprint, scores and change flag,
``sample()`` the volatile readings. Nothing raises: what cannot be read is listed in ``missing``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from msgspec.structs import replace

from services.observer import sysfs
from services.observer.nvml import NvmlReader
from services.observer.stats import LiveStats, Stats
from shared.config import Settings
from shared.fingerprint import fingerprint
from shared.messages import (
    MAX_GPUS,
    MAX_MISSING,
    MAX_SENSOR_NAME,
    MAX_TEMPERATURES,
    HardwareSnapshot,
    Inventory,
    Missing,
    SensorReading,
    Temperature,
)
from shared.scores import compute_scores
from shared.thermal import thermal_state

log = logging.getLogger("qas.observer")


class HardwareProbe:
    def __init__(
        self,
        settings: Settings,
        host_id: str,
        *,
        root: Path = Path("/"),
        stats: Stats | None = None,
        nvml: NvmlReader | None = None,
        clock: Callable[[], float] = time.time,
        thermal_source: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.host_id = host_id
        self.root = root
        self.stats = stats if stats is not None else LiveStats()
        self.nvml = nvml if nvml is not None else NvmlReader(None)
        self.clock = clock
        # an announced thermal state (0..1) beside the sensors: the higher of the two is used
        self.thermal_source = thermal_source
        self.last: HardwareSnapshot | None = None

    def inventory(self) -> tuple[Inventory, list[Missing]]:
        missing: list[Missing] = []
        root = self.root
        total, _, _ = self.stats.memory()
        freq = sysfs.cpu_max_freq_mhz(root)
        if freq is None:
            freq = sysfs.cpuinfo_mhz(root)
            missing.append(
                Missing(
                    part="cpu_max_freq",
                    reason="no cpufreq in sysfs (VM or container): nominal MHz from /proc/cpuinfo"
                    if freq
                    else "no cpufreq in sysfs and no MHz in /proc/cpuinfo",
                )
            )
        model = sysfs.cpu_model(root)
        if model is None:
            missing.append(Missing(part="cpu_model", reason="not in /proc/cpuinfo"))
        try:
            mem_limit = sysfs.cgroup_memory_limit(root)
            quota = sysfs.cgroup_cpu_quota(root)
        except ValueError as exc:
            mem_limit, quota = None, None
            missing.append(Missing(part="cgroup", reason=f"unparsable cgroup file: {exc}"))
        gpus, gpu_missing = self.nvml.inventory()
        inv = Inventory(
            cpu_model=model or "unknown",
            logical_cores=self.stats.logical_cores(),
            physical_cores=self.stats.physical_cores(),
            cpu_max_freq_mhz=freq,
            cpu_quota_cores=quota,
            memory_total_bytes=max(1, total),
            memory_limit_bytes=mem_limit,
            gpus=gpus,
            board_model=sysfs.board_model(root),
            arch=sysfs.machine_arch(),
        )
        return inv, missing + gpu_missing

    def snapshot(self) -> HardwareSnapshot:
        """The current inventory as a snapshot; ``changed`` when it differs from the last one."""
        inv, missing = self.inventory()
        fp = fingerprint(inv)
        prev = self.last
        snap = HardwareSnapshot(
            event_time=self.clock(),
            host_id=self.host_id,
            fingerprint=fp,
            inventory=inv,
            scores=compute_scores(inv, self.settings.scores),
            missing=missing,
            changed=prev is not None and prev.fingerprint != fp,
            previous_fingerprint=None if prev is None else prev.fingerprint,
        )
        self.last = snap
        return snap

    def sample(self) -> SensorReading:
        missing: list[Missing] = []
        root = self.root
        temps = self._temperatures()
        if not temps:
            missing.append(
                Missing(part="temperatures", reason="no thermal zones, hwmon or psutil sensors")
            )
        self.nvml.start()
        gpus, gpu_missing = self.nvml.sensors() if self.nvml.ready else ([], [])
        pi = sysfs.pi_throttle(root)
        state, throttling = thermal_state(temps, gpus, pi, self.settings.thermal)
        if self.thermal_source is not None:
            state = max(state, min(1.0, max(0.0, float(self.thermal_source()))))
        _, available, swap = self.stats.memory()
        return SensorReading(
            event_time=self.clock(),
            host_id=self.host_id,
            fingerprint=None if self.last is None else self.last.fingerprint,
            cpu_utilization_ratio=self.stats.cpu_utilization(),
            cpu_freq_mhz=self.stats.cpu_freq_mhz(),
            load_average=sysfs.loadavg(root),
            memory_available_bytes=available,
            memory_pressure_some_avg10=sysfs.psi_memory_some_avg10(root),
            swap_used_bytes=swap,
            # bounded as the message is (the thermal state above saw every sensor)
            temperatures=temps[:MAX_TEMPERATURES],
            gpus=gpus[:MAX_GPUS],
            pi_throttle=pi,
            thermal_state=state,
            thermal_throttling=throttling,
            missing=(missing + gpu_missing)[:MAX_MISSING],
        )

    def _temperatures(self) -> list[Temperature]:
        seen: dict[str, Temperature] = {}
        for t in (
            sysfs.thermal_zones(self.root) + sysfs.hwmon(self.root) + self.stats.temperatures()
        ):
            name = t.sensor[:MAX_SENSOR_NAME]  # a hwmon label can be longer than a message allows
            seen.setdefault(name, t if name == t.sensor else replace(t, sensor=name))
        return list(seen.values())
