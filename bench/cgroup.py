"""A child cgroup for the engine benchmark: memory limit, CPU quota (squeezable), peak, OOM kill.

v1 (memory + cpu controllers, `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` where present,
`cpu.cfs_quota_us`/`cpu.cfs_period_us`) or v2 (`memory.max`, `cpu.max`, `memory.peak`,
`memory.events`). The child joins the group in a preexec hook, before it allocates anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

V1_MEM = Path("/sys/fs/cgroup/memory")
V1_CPU = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")
# A short CFS period: a quarter-core quota then slows every batch about 4x, smoothly, instead of
# stopping the whole group for most of a 100 ms period (which no batch size can hide).
PERIOD_US = 10_000


def _own_path(controller: str) -> str:
    """This process's cgroup path for a v1 controller ('' key for v2)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return path
    return "/"


def is_v2() -> bool:
    return (V2_ROOT / "cgroup.controllers").exists()


def parse_kv(text: str) -> dict[str, int]:
    """Parse 'key value' lines (memory.events, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


@dataclass
class Cgroup:
    name: str
    memory_limit_bytes: int
    cpu_cores: float
    dirs: list[Path] = field(default_factory=list)
    v2: bool = field(default_factory=is_v2)

    @property
    def mem_dir(self) -> Path:
        return self.dirs[0]

    @property
    def cpu_dir(self) -> Path:
        return self.dirs[-1]

    def create(self) -> None:
        if os.geteuid() != 0:
            raise PermissionError("cgroup benchmark needs root")
        if self.v2:
            d = V2_ROOT / _own_path("").lstrip("/") / self.name
            d.mkdir()
            self.dirs = [d]
            (d / "memory.max").write_text(str(self.memory_limit_bytes))
            if (d / "memory.swap.max").exists():
                (d / "memory.swap.max").write_text("0")
        else:
            m = V1_MEM / _own_path("memory").lstrip("/") / self.name
            c = V1_CPU / _own_path("cpu").lstrip("/") / self.name
            m.mkdir()
            self.dirs = [m]
            c.mkdir()
            self.dirs.append(c)
            (m / "memory.limit_in_bytes").write_text(str(self.memory_limit_bytes))
            sw = m / "memory.memsw.limit_in_bytes"
            if sw.exists():
                sw.write_text(str(self.memory_limit_bytes))
        self.set_cpu(self.cpu_cores)

    def set_cpu(self, cores: float) -> None:
        quota = max(1000, int(cores * PERIOD_US))
        if self.v2:
            (self.cpu_dir / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.cpu_dir / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))

    def cpu_quota_text(self) -> str:
        f = "cpu.max" if self.v2 else "cpu.cfs_quota_us"
        return (self.cpu_dir / f).read_text().strip()

    def start(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        procs = [d / "cgroup.procs" for d in self.dirs]

        def join() -> None:
            for p in procs:
                p.write_text(str(os.getpid()))

        return subprocess.Popen(argv, preexec_fn=join, **kw)  # type: ignore[call-overload,no-any-return]

    def peak_bytes(self) -> int | None:
        f = self.mem_dir / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes")
        return int(f.read_text()) if f.exists() else None

    def anon_bytes(self) -> int:
        """Anonymous memory charged now (what an OOM kill is about; the peak also holds page
        cache, e.g. of files the engine writes, which the kernel reclaims before it kills)."""
        kv = parse_kv((self.mem_dir / "memory.stat").read_text())
        return kv.get("anon", 0) if self.v2 else kv.get("total_rss", kv.get("rss", 0))

    def oom_kills(self) -> int:
        if self.v2:
            return parse_kv((self.mem_dir / "memory.events").read_text()).get("oom_kill", 0)
        kv = parse_kv((self.mem_dir / "memory.oom_control").read_text())
        if "oom_kill" in kv:
            return kv["oom_kill"]
        return int((self.mem_dir / "memory.failcnt").read_text())

    def killed_by_oom(self, returncode: int | None) -> bool:
        return returncode == -signal.SIGKILL and self.oom_kills() > 0

    def cleanup(self) -> None:
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        self.dirs = [d for d in self.dirs if d.exists()]
