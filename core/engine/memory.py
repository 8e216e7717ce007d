"""The engine's memory controller: read its own cgroup, move the store's budget ahead of growth.

Reading (``MemoryReader``): the engine's own memory cgroup, found from ``/proc/<pid>/cgroup`` and
``/proc/<pid>/mountinfo`` under an injectable filesystem root. cgroup v1 gives
``memory.usage_in_bytes`` and the smaller of ``memory.limit_in_bytes`` and the
``hierarchical_memory_limit`` of ``memory.stat``; v2 gives ``memory.current``, the smallest
``memory.max``/``memory.high`` up the tree and ``memory.pressure``. Use is the working set (less
``inactive_file``, the page cache the kernel reclaims before it kills), as the kubelet counts it.
A v1 limit of 2**60 or more (the kernel writes 2**63 rounded down to a page) is unlimited. An
engine may also declare its limit; the smaller limit is the one held.
Without a cgroup limit or a declared one, nothing is controlled (the source is "rss").

Control (``step``): pure, modelled on senpai (Facebook), which holds a pressure target by moving
``memory.high`` a few percent a step. Here the controlled quantity is the predicted peak

    peak = (use - store bytes) + store budget + growth * horizon

and the knob is the store's budget: the store meets any budget by going down its ladder
(lossless compression first, lossy only for blocks the engine tagged low-value, eviction last).
A peak above ``high`` (95 %) of the limit lowers the budget at once to the one whose peak is the
target (90 %): running out of memory is fatal, so lowering is not rate-limited. A peak below
``low`` (85 %) raises it towards that budget by at most ``max_rise`` of the limit a step. In
between it holds: the band is the hysteresis that keeps noise from moving it. Growth is the
Theil-Sen slope (the median of pairwise slopes, robust to noise and to a one-off jump) of the
engine's use less its store over the last readings, never taken below 0.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Literal

import msgspec

from core.engine.feedback import resident_bytes

log = logging.getLogger("qas.engine")

Source = Literal["cgroup-v1", "cgroup-v2", "declared", "rss"]
UNLIMITED_V1 = 1 << 60  # at or above: no limit (v1 writes 2**63 rounded down to a page)
MiB = float(1 << 20)


# --- reading ----------------------------------------------------------------------------------


class MemoryReading(msgspec.Struct, frozen=True, kw_only=True):
    """One reading: the use and the limit of the tighter constraint, and where they come from."""

    at: float
    used_bytes: int  # what is compared with the limit
    limit_bytes: int | None  # None: unlimited, nothing to control
    source: Source
    rss_bytes: int
    pressure: float | None = None  # v2: share of the last 10 s some task stalled on memory
    cgroup_limit_bytes: int | None = None
    declared_limit_bytes: int | None = None


@dataclass(frozen=True)
class CgroupDir:
    """The engine's memory cgroup: its version, its directory and (v2) those above it."""

    version: Literal[1, 2]
    directory: Path
    ancestors: tuple[Path, ...] = ()  # v2, nearest first, within the mount


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, ch)
    return field


def _mounts(root: Path, pid: str) -> list[tuple[str, str, str, str]]:
    """(fstype, mount root, mount point, super options) of the cgroup mounts."""
    try:
        text = (root / "proc" / pid / "mountinfo").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            out.append((tail[0], _unescape(fields[3]), _unescape(fields[4]), tail[2]))
    return out


def _under(root: Path, mount_point: str, mount_root: str, path: str) -> list[Path]:
    """Where cgroup ``path`` may be seen: below the mount (its root taken off), or the mount."""
    base = root / mount_point.lstrip("/")
    rel = path
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        rel = path[len(mount_root) :]
    # a cgroup namespace, or a container with the host's paths but its own group mounted
    return [base / rel.lstrip("/"), base / path.lstrip("/"), base]


def find_cgroup(root: Path = Path("/"), pid: int | str = "self") -> CgroupDir | None:
    """The memory cgroup of process ``pid`` as seen under ``root``; None without one."""
    pid = str(pid)
    try:
        lines = (root / "proc" / pid / "cgroup").read_text().splitlines()
    except OSError:
        return None
    v1_path = v2_path = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_path = parts[2]
        elif "memory" in parts[1].split(","):
            v1_path = parts[2]
    mounts = _mounts(root, pid)
    if v1_path is not None:  # a v1 memory controller wins (hybrid: v2 holds no memory files)
        points = [(m, r) for t, r, m, o in mounts if t == "cgroup" and "memory" in o.split(",")]
        for mount_point, mount_root in points or [("/sys/fs/cgroup/memory", "/")]:
            for d in _under(root, mount_point, mount_root, v1_path):
                if (d / "memory.usage_in_bytes").is_file():
                    return CgroupDir(1, d)
    if v2_path is not None:
        points = [(m, r) for t, r, m, o in mounts if t == "cgroup2"]
        for mount_point, mount_root in points or [("/sys/fs/cgroup", "/")]:
            base = root / mount_point.lstrip("/")
            for d in _under(root, mount_point, mount_root, v2_path):
                if (d / "memory.current").is_file():
                    ups = []
                    up = d.parent
                    while up != base.parent and base in (up, *up.parents):
                        ups.append(up)
                        up = up.parent
                    return CgroupDir(2, d, tuple(ups))
    return None


def _int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text == "max" or not text.lstrip("-").isdigit() else int(text)


def parse_stat(text: str) -> dict[str, int]:
    """``memory.stat``: 'key value' lines."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_pressure(text: str) -> float | None:
    """``memory.pressure``: the 'some avg10' share (0..1) of time a task stalled on memory."""
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "avg10":
                    try:
                        return min(1.0, max(0.0, float(value) / 100.0))
                    except ValueError:
                        return None
    return None


def read_cgroup(cg: CgroupDir) -> tuple[int, int | None, float | None]:
    """(working set, limit or None, pressure or None) of a memory cgroup."""
    try:
        stat = parse_stat((cg.directory / "memory.stat").read_text())
    except OSError:
        stat = {}
    if cg.version == 1:
        usage = _int(cg.directory / "memory.usage_in_bytes") or 0
        limits = [
            _int(cg.directory / "memory.limit_in_bytes"),
            stat.get("hierarchical_memory_limit"),
        ]
        inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
        pressure = None  # v1 has no pressure stall information
    else:
        usage = _int(cg.directory / "memory.current") or 0
        limits = [
            _int(d / name)
            for d in (cg.directory, *cg.ancestors)
            for name in ("memory.max", "memory.high")
        ]
        inactive = stat.get("inactive_file", 0)
        try:
            pressure = parse_pressure((cg.directory / "memory.pressure").read_text())
        except OSError:
            pressure = None
    known = [x for x in limits if x is not None and 0 < x < UNLIMITED_V1]
    return max(0, usage - inactive), (min(known) if known else None), pressure


class MemoryReader:
    """Reads the engine's memory: its cgroup (found once) and its RSS, against the limits."""

    def __init__(
        self,
        declared_limit_bytes: int | None = None,
        *,
        root: Path | str = "/",
        pid: int | str = "self",
        rss: Callable[[], int] = resident_bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.declared_limit_bytes = declared_limit_bytes
        self.cgroup = find_cgroup(Path(root), pid)
        self.rss = rss
        self.clock = clock

    def __call__(self) -> MemoryReading:
        return self.read()

    def read(self) -> MemoryReading:
        rss = int(self.rss())
        declared = self.declared_limit_bytes
        used, limit, pressure = (
            (rss, None, None) if self.cgroup is None else read_cgroup(self.cgroup)
        )
        # the smaller limit is held (a tie: the cgroup's, whose use is what the kernel counts;
        # RSS also counts shared library pages charged to other groups)
        options: list[tuple[int, int, Source]] = []
        if limit is not None and self.cgroup is not None:
            options.append((limit, 0, "cgroup-v1" if self.cgroup.version == 1 else "cgroup-v2"))
        if declared is not None:
            options.append((declared, 1, "declared"))
        if not options:
            return MemoryReading(at=self.clock(), used_bytes=rss, limit_bytes=None, source="rss",
                                 rss_bytes=rss, pressure=pressure)  # fmt: skip
        _, _, source = min(options)
        held_used, held_limit = (rss, declared) if source == "declared" else (used, limit)
        assert held_limit is not None
        return MemoryReading(
            at=self.clock(), used_bytes=held_used, limit_bytes=held_limit, source=source,
            rss_bytes=rss, pressure=pressure, cgroup_limit_bytes=limit,
            declared_limit_bytes=declared,
        )  # fmt: skip


# --- control ----------------------------------------------------------------------------------


class MemoryConfig(msgspec.Struct, frozen=True, kw_only=True):
    target: float = 0.90  # the predicted peak aimed at, a share of the limit
    low: float = 0.85  # below: the budget rises (boundedly)
    high: float = 0.95  # above: the budget falls (at once)
    horizon_seconds: float = 5.0  # how far ahead growth is predicted
    max_rise: float = 0.05  # the most the budget rises in one step, a share of the limit
    floor_bytes: int = 1 << 20  # the budget never goes below this
    window: int = 10  # readings the growth is fitted over
    pressure_threshold: float = 0.10  # v2 pressure above this lowers the budget a rise's step


class MemoryState(msgspec.Struct, frozen=True, kw_only=True):
    """What the controller carries from one step to the next (bounded: ``window`` points)."""

    budget_bytes: int | None = None  # the budget it last set (None: none yet)
    points: tuple[tuple[float, int], ...] = ()  # (time, use less store), oldest first
    items: tuple[tuple[float, int], ...] = ()  # (time, items computed in the interval)


Action = Literal["start", "hold", "lower", "raise", "unlimited"]


class MemoryStep(msgspec.Struct, frozen=True, kw_only=True):
    """What one step did and why."""

    at: float
    action: Action
    budget_bytes: int | None  # the store budget now (None: not controlled)
    previous_budget_bytes: int | None
    predicted_peak_bytes: int | None  # with the new budget
    used_bytes: int
    limit_bytes: int | None
    store_bytes: int
    growth_bytes_per_second: float
    bytes_per_item: float | None  # growth per item (one symbol at one bar), where items came
    source: Source
    pressure: float | None
    reason: str


def theil_sen(points: tuple[tuple[float, int], ...]) -> float:
    """The median of the pairwise slopes (0 with fewer than two distinct times)."""
    slopes = [
        (b[1] - a[1]) / (b[0] - a[0])
        for i, a in enumerate(points)
        for b in points[i + 1 :]
        if b[0] > a[0]
    ]
    return float(median(slopes)) if slopes else 0.0


def step(
    state: MemoryState,
    reading: MemoryReading,
    store_bytes: int,
    config: MemoryConfig | None = None,
    items: int | None = None,
) -> tuple[MemoryState, MemoryStep]:
    """One control step at ``reading.at``: the next state and what was done (pure)."""
    c = config or MemoryConfig()
    now, used, limit = reading.at, reading.used_bytes, reading.limit_bytes
    other = max(0, used - store_bytes)
    points = (*state.points, (now, other))[-c.window :]
    counted = state.items if items is None else (*state.items, (now, items))[-c.window :]
    growth = theil_sen(points)
    g = max(0.0, growth)
    per_item = _per_item(growth, counted)
    prev = state.budget_bytes
    where = f"{reading.source}"
    if limit is None:
        out = MemoryState(budget_bytes=None, points=points, items=counted)
        reason = f"memory {used / MiB:.0f} MiB, no limit ({where}): store budget not controlled"
        return out, MemoryStep(
            at=now, action="unlimited", budget_bytes=None, previous_budget_bytes=prev,
            predicted_peak_bytes=None, used_bytes=used, limit_bytes=None, store_bytes=store_bytes,
            growth_bytes_per_second=growth, bytes_per_item=per_item, source=reading.source,
            pressure=reading.pressure, reason=reason,
        )  # fmt: skip
    reserve = g * c.horizon_seconds
    ideal = max(c.floor_bytes, int(c.target * limit - other - reserve))
    why = ""
    action: Action
    if prev is None:
        new, action = ideal, "start"
    else:
        peak = other + prev + reserve
        pressed = reading.pressure is not None and reading.pressure > c.pressure_threshold
        if peak > c.high * limit:
            new, action = ideal, "lower"
        elif pressed:
            new, action = max(c.floor_bytes, min(ideal, prev - int(c.max_rise * limit))), "lower"
            why = f", pressure {reading.pressure:.0%}"
        elif peak < c.low * limit and ideal > prev:
            new, action = min(ideal, prev + int(c.max_rise * limit)), "raise"
        else:
            new, action = prev, "hold"
        if new == prev:
            action = "hold"
    predicted = int(other + new + reserve)
    rate = f"growing {g / 1e6:.2f} MB/s" + ("" if per_item is None else f" ({per_item:.0f} B/item)")
    move = f"{_mib(prev)} -> {_mib(new)}" if action != "hold" else f"holds {_mib(new)}"
    floor = " (the floor)" if new == c.floor_bytes and ideal == c.floor_bytes else ""
    reason = (
        f"memory {used / limit:.2f} of {limit / MiB:.0f} MiB ({where}{why}), {rate}: "
        f"predicted peak {predicted / limit:.2f}, store budget {move}{floor}"
    )
    return MemoryState(budget_bytes=new, points=points, items=counted), MemoryStep(
        at=now, action=action, budget_bytes=new, previous_budget_bytes=prev,
        predicted_peak_bytes=predicted, used_bytes=used, limit_bytes=limit,
        store_bytes=store_bytes, growth_bytes_per_second=growth, bytes_per_item=per_item,
        source=reading.source, pressure=reading.pressure, reason=reason,
    )  # fmt: skip


def _per_item(growth: float, counted: tuple[tuple[float, int], ...]) -> float | None:
    """Growth per item: bytes/s over the items/s of the intervals counted."""
    if len(counted) < 2:
        return None
    span = counted[-1][0] - counted[0][0]
    n = sum(k for _, k in counted[1:])
    return None if span <= 0 or n <= 0 else growth / (n / span)


def _mib(b: int | None) -> str:
    return "none" if b is None else f"{b / MiB:.1f} MiB"
