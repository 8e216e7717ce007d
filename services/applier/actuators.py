"""What the applier changes besides publishing the engine config. Each actuator is off until it
is configured, has a dry run that reports what it would do, and turns a permission error or a
missing cgroup into a failed result with the reason, never an exception.

- CgroupLimits: memory and CPU limits on a cgroup. v2: ``memory.high`` = the decision's memory
  budget, ``cpu.max`` = workers x period. v1: ``memory.soft_limit_in_bytes`` and
  ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (the v1 CPU controller may be a separate dir).
- ProcessLimits: CPU affinity (the first ``workers`` allowed CPUs) and niceness (0 at factor >= 1,
  up to +10 as the factor falls to 0.5 and below) of a target process.
- GpuPowerLimit: NVML power limit = min + (max - min) x min(1, factor), within the board's
  constraints; needs root on most systems.
- PoolEnactor: the precision-tiered memory pool, with the predictive cache rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import psutil

from services.applier.pool import TieredPool
from shared import predictive
from shared.messages import ActuatorResult, ScalingDecision


def _result(
    name: str,
    ok: bool,
    detail: str,
    dry: bool,
    *,
    bytes_before: int | None = None,
    bytes_after: int | None = None,
    error_bound: float | None = None,
) -> ActuatorResult:
    return ActuatorResult(
        actuator=name, status="applied" if ok else "failed", detail=detail, dry_run=dry,
        bytes_before=bytes_before, bytes_after=bytes_after, error_bound=error_bound,
    )  # fmt: skip


@dataclass
class CgroupLimits:
    path: Path  # the cgroup directory (v2), or the v1 memory cgroup directory
    cpu_path: Path | None = None  # v1 only: the cpu controller's directory
    dry_run: bool = False
    period_us: int = 100_000
    name: str = "cgroup"

    def plan(self, d: ScalingDecision) -> list[tuple[Path, str]]:
        if (self.path / "memory.high").exists() or (self.path / "cgroup.controllers").exists():
            return [
                (self.path / "memory.high", str(d.memory_budget_bytes)),
                (self.path / "cpu.max", f"{d.workers * self.period_us} {self.period_us}"),
            ]
        cpu = self.cpu_path or self.path
        return [
            (self.path / "memory.soft_limit_in_bytes", str(d.memory_budget_bytes)),
            (cpu / "cpu.cfs_period_us", str(self.period_us)),
            (cpu / "cpu.cfs_quota_us", str(d.workers * self.period_us)),
        ]

    def enact(self, d: ScalingDecision) -> ActuatorResult:
        if not self.path.is_dir():
            return _result(self.name, False, f"no cgroup at {self.path}", self.dry_run)
        writes = self.plan(d)
        text = ", ".join(f"{p.name}={v}" for p, v in writes)
        if self.dry_run:
            return _result(self.name, True, f"would write {text} in {self.path}", True)
        for p, value in writes:
            try:
                p.write_text(value)
            except OSError as exc:  # PermissionError, missing file, EINVAL from the kernel
                return _result(
                    self.name, False, f"cannot write {value} to {p}: {exc.strerror or exc}", False
                )
        return _result(self.name, True, f"wrote {text} in {self.path}", False)


@dataclass
class ProcessLimits:
    pid: int
    dry_run: bool = False
    name: str = "process"

    @staticmethod
    def nice_for(factor: float) -> int:
        return 0 if factor >= 1.0 else min(10, round((1.0 - factor) * 20))

    def enact(self, d: ScalingDecision) -> ActuatorResult:
        try:
            proc = psutil.Process(self.pid)
            allowed = proc.cpu_affinity() or list(range(os.cpu_count() or 1))
            cpus = allowed[: max(1, min(d.workers, len(allowed)))]
            nice = self.nice_for(d.scaling_factor)
            text = f"affinity {cpus}, nice {nice} for pid {self.pid}"
            if self.dry_run:
                return _result(self.name, True, f"would set {text}", True)
            proc.cpu_affinity(cpus)
            proc.nice(nice)
            return _result(self.name, True, f"set {text}", False)
        except psutil.NoSuchProcess:
            return _result(self.name, False, f"no process {self.pid}", self.dry_run)
        except (psutil.AccessDenied, PermissionError) as exc:
            return _result(
                self.name, False, f"not permitted for pid {self.pid}: {exc}", self.dry_run
            )


@dataclass
class GpuPowerLimit:
    nvml: ModuleType
    index: int = 0
    dry_run: bool = False
    name: str = "gpu_power"

    def enact(self, d: ScalingDecision) -> ActuatorResult:
        n = self.nvml
        try:
            n.nvmlInit()
            h = n.nvmlDeviceGetHandleByIndex(self.index)
            lo, hi = n.nvmlDeviceGetPowerManagementLimitConstraints(h)
            target = int(lo + (hi - lo) * min(1.0, d.scaling_factor))
            text = f"gpu{self.index} power limit {target / 1000:.0f} W (range {lo / 1000:.0f}-{hi / 1000:.0f} W)"
            if self.dry_run:
                return _result(self.name, True, f"would set {text}", True)
            n.nvmlDeviceSetPowerManagementLimit(h, target)
            return _result(self.name, True, f"set {text}", False)
        except n.NVMLError as exc:
            return _result(self.name, False, f"NVML: {exc}", self.dry_run)


@dataclass
class PoolEnactor:
    pool: TieredPool
    name: str = "memory_pool"
    trend: predictive.TrendState = field(default_factory=predictive.TrendState)

    def enact(self, d: ScalingDecision) -> ActuatorResult:
        self.trend = predictive.update(self.trend, d.inputs.profit_potential, d.event_time)
        r = self.pool.apply(d.precision_bits, d.memory_budget_bytes, reserve=self.trend.reserved)
        detail = (
            f"tier {d.precision_bits}-bit, budget {d.memory_budget_bytes} B: {r.bytes_before} -> "
            f"{r.bytes_after} B, {r.downgraded} blocks re-encoded, {r.evicted} evicted, "
            f"reserve {'held' if self.trend.reserved else 'released'}"
        )
        return ActuatorResult(
            actuator=self.name,
            status="applied",
            detail=detail,
            bytes_before=r.bytes_before,
            bytes_after=r.bytes_after,
            error_bound=r.error_bound,
        )
