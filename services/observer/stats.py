"""Volatile CPU and memory figures: psutil on a live host, /proc parsing for recorded trees."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import psutil

from services.observer import sysfs
from shared.messages import Temperature


class Stats(Protocol):
    def cpu_utilization(self) -> float: ...
    def cpu_freq_mhz(self) -> float | None: ...
    def memory(self) -> tuple[int, int, int]: ...  # total, available, swap used (bytes)
    def logical_cores(self) -> int: ...
    def physical_cores(self) -> int | None: ...
    def temperatures(self) -> list[Temperature]: ...


class LiveStats:
    """psutil readings of this machine. cpu_percent(None) compares with the previous call."""

    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)

    def cpu_utilization(self) -> float:
        return min(1.0, psutil.cpu_percent(interval=None) / 100.0)

    def cpu_freq_mhz(self) -> float | None:
        try:
            f = psutil.cpu_freq()
        except (OSError, NotImplementedError):
            return None
        return None if f is None or not f.current else float(f.current)

    def memory(self) -> tuple[int, int, int]:
        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available), int(psutil.swap_memory().used)

    def logical_cores(self) -> int:
        return psutil.cpu_count(logical=True) or 1

    def physical_cores(self) -> int | None:
        return psutil.cpu_count(logical=False)

    def temperatures(self) -> list[Temperature]:
        try:
            groups = psutil.sensors_temperatures()
        except (AttributeError, OSError):
            return []
        return [
            Temperature(
                sensor=f"{chip}/{t.label or 'temp'}",
                celsius=float(t.current),
                throttle_celsius=_throttle_point(t.high, t.critical),
            )
            for chip, entries in groups.items()
            for t in entries
        ]


class ProcfsStats:
    """The same figures parsed from a recorded /proc and /sys tree."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def cpu_utilization(self) -> float:
        loads = sysfs.loadavg(self.root)
        return 0.0 if loads is None else min(1.0, loads[0] / self.logical_cores())

    def cpu_freq_mhz(self) -> float | None:
        khz = sysfs.read_int(self.root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
        return None if khz is None else khz / 1000.0

    def memory(self) -> tuple[int, int, int]:
        m = sysfs.meminfo(self.root)
        swap = m.get("SwapTotal", 0) - m.get("SwapFree", 0)
        return m.get("MemTotal", 0), m.get("MemAvailable", m.get("MemFree", 0)), max(0, swap)

    def logical_cores(self) -> int:
        text = sysfs.read(self.root, "proc/cpuinfo") or ""
        return max(1, sum(1 for line in text.splitlines() if line.startswith("processor")))

    def physical_cores(self) -> int | None:
        text = sysfs.read(self.root, "proc/cpuinfo") or ""
        cores = {line for line in text.splitlines() if line.startswith("core id")}
        return len(cores) or None

    def temperatures(self) -> list[Temperature]:
        return []  # a recorded tree's temperatures come from its thermal/hwmon files


def _throttle_point(high: float | None, critical: float | None) -> float | None:
    point = high or critical
    return float(point) if point else None
