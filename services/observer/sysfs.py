"""Readers for /proc and /sys under a root directory, so recorded trees can stand in for a host.

Each reader returns None (and the caller records why) when a file is absent or unreadable.
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.messages import PiThrottle, Temperature

UNLIMITED_V1 = 1 << 62  # cgroup v1 reports "no limit" as a huge page-aligned number


def read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(errors="replace").strip()
    except (OSError, ValueError):
        return None


def read_int(root: Path, rel: str) -> int | None:
    text = read(root, rel)
    try:
        return None if text is None else int(text.split()[0])
    except (ValueError, IndexError):
        return None


def cgroup_paths(root: Path) -> dict[str, str]:
    """controller -> path from /proc/self/cgroup; the v2 unified entry is under ''."""
    out: dict[str, str] = {}
    for line in (read(root, "proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctrl in parts[1].split(",") if parts[1] else [""]:
                out[ctrl] = parts[2]
    return out


def cgroup_file(root: Path, controller: str, name: str) -> str | None:
    """Read a controller file: v1 when the controller has its own hierarchy, else v2.

    Inside a container the cgroup namespace often shows the process's own cgroup at the mount
    point, so the process path is tried first and the mount point second.
    """
    paths = cgroup_paths(root)
    base = root / "sys/fs/cgroup"
    if controller in paths:  # v1 (or hybrid: this controller on v1)
        for mount in (controller, "cpu,cpuacct" if controller == "cpu" else controller):
            for d in (base / mount / paths[controller].lstrip("/"), base / mount):
                text = _text(d / name)
                if text is not None:
                    return text
        return None
    for d in (base / paths.get("", "/").lstrip("/"), base):
        text = _text(d / name)
        if text is not None:
            return text
    return None


def _text(p: Path) -> str | None:
    try:
        return p.read_text().strip()
    except OSError:
        return None


def cgroup_memory_limit(root: Path) -> int | None:
    """cgroup v2 memory.max or v1 memory.limit_in_bytes; None when unlimited or absent."""
    v1 = cgroup_file(root, "memory", "memory.limit_in_bytes")
    if v1 is not None:
        value = int(v1)
        return None if value >= UNLIMITED_V1 or value < 0 else value
    v2 = cgroup_file(root, "", "memory.max")
    return None if v2 is None or v2 == "max" else int(v2)


def cgroup_cpu_quota(root: Path) -> float | None:
    """Effective CPUs from v2 cpu.max ("quota period") or v1 cfs_quota_us / cfs_period_us."""
    quota = cgroup_file(root, "cpu", "cpu.cfs_quota_us")
    if quota is not None:
        period = cgroup_file(root, "cpu", "cpu.cfs_period_us") or "100000"
        return None if int(quota) <= 0 else int(quota) / int(period)
    text = cgroup_file(root, "", "cpu.max")
    if not text or text.startswith("max"):
        return None
    q, _, period = text.partition(" ")
    return int(q) / int(period or "100000")


def cpuinfo_mhz(root: Path) -> float | None:
    """Nominal clock from /proc/cpuinfo, for VMs that expose no cpufreq."""
    for line in (read(root, "proc/cpuinfo") or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "cpu MHz":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def cpu_model(root: Path) -> str | None:
    text = read(root, "proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return None


def cpu_max_freq_mhz(root: Path) -> float | None:
    khz = read_int(root, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return None if khz is None else khz / 1000.0


def meminfo(root: Path) -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out: dict[str, int] = {}
    for line in (read(root, "proc/meminfo") or "").splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            scale = 1024 if len(fields) > 1 and fields[1] == "kB" else 1
            out[name.strip()] = int(fields[0]) * scale
    return out


def loadavg(root: Path) -> tuple[float, float, float] | None:
    text = read(root, "proc/loadavg")
    if not text:
        return None
    a, b, c = text.split()[:3]
    return float(a), float(b), float(c)


def psi_memory_some_avg10(root: Path) -> float | None:
    for line in (read(root, "proc/pressure/memory") or "").splitlines():
        if line.startswith("some "):
            for item in line.split()[1:]:
                k, _, v = item.partition("=")
                if k == "avg10":
                    return float(v)
    return None


def board_model(root: Path) -> str | None:
    text = read(root, "proc/device-tree/model")
    return text.rstrip("\x00") if text else None


def thermal_zones(root: Path) -> list[Temperature]:
    base = root / "sys/class/thermal"
    out: list[Temperature] = []
    for zone in sorted(base.glob("thermal_zone*")) if base.is_dir() else []:
        milli = read_int(zone, "temp")
        if milli is None:
            continue
        kind = read(zone, "type") or zone.name
        trip = None
        for i in range(16):
            if read(zone, f"trip_point_{i}_type") in ("passive", "hot"):
                trip = read_int(zone, f"trip_point_{i}_temp")
                break
        out.append(
            Temperature(
                sensor=f"{zone.name}/{kind}",
                celsius=milli / 1000.0,
                throttle_celsius=None if trip is None else trip / 1000.0,
            )
        )
    return out


def hwmon(root: Path) -> list[Temperature]:
    base = root / "sys/class/hwmon"
    out: list[Temperature] = []
    for dev in sorted(base.glob("hwmon*")) if base.is_dir() else []:
        name = read(dev, "name") or dev.name
        for inp in sorted(dev.glob("temp*_input")):
            milli = read_int(dev, inp.name)
            if milli is None:
                continue
            stem = inp.name[: -len("_input")]
            label = read(dev, f"{stem}_label") or stem
            limit = read_int(dev, f"{stem}_max") or read_int(dev, f"{stem}_crit")
            out.append(
                Temperature(
                    sensor=f"{name}/{label}",
                    celsius=milli / 1000.0,
                    throttle_celsius=None if not limit else limit / 1000.0,
                )
            )
    return out


PI_THROTTLED_PATHS = (
    "sys/devices/platform/soc/soc:firmware/get_throttled",
    "sys/devices/platform/soc/soc:firmware/raspberrypi-hwmon/get_throttled",
)


def pi_throttle(root: Path) -> PiThrottle | None:
    for rel in PI_THROTTLED_PATHS:
        text = read(root, rel)
        if text:
            return decode_pi_throttled(int(text, 16))  # "0x50005" or "50005": always hex
    return None


def decode_pi_throttled(raw: int) -> PiThrottle:
    def bit(n: int) -> bool:
        return bool(raw >> n & 1)

    return PiThrottle(
        raw=raw,
        under_voltage=bit(0),
        frequency_capped=bit(1),
        throttled=bit(2),
        soft_temp_limit=bit(3),
        under_voltage_since_boot=bit(16),
        frequency_capped_since_boot=bit(17),
        throttled_since_boot=bit(18),
        soft_temp_limit_since_boot=bit(19),
    )


def machine_arch() -> str:
    return os.uname().machine
