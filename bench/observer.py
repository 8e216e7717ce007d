"""Observer: cost of one full sensor sample and of an inventory pass; CPU share at 1 Hz.

Baseline in the same run: the two psutil calls any monitor makes (cpu_percent, virtual_memory).
Targets on this machine: <= 2 ms per sample, <= 0.5 % of one core at 1 Hz.
"""

from __future__ import annotations

import asyncio
import time

import psutil

from bench.common import median, pct, table
from services.bus.memory import MemoryBus
from services.observer.nvml import NvmlReader, load_pynvml
from services.observer.probe import HardwareProbe
from services.observer.service import ObserverService
from shared.config import Settings


def _timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


async def _cpu_share(seconds: float) -> float:
    settings = Settings(sensor_interval_seconds=1.0)
    probe = HardwareProbe(settings, "bench", nvml=NvmlReader(load_pynvml()))
    svc = ObserverService(MemoryBus(retention=100), probe, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.sleep(1.0)  # start-up inventory is not the steady state
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, t1 = time.process_time(), time.perf_counter()
    stop.set()
    await task
    return (cpu1 - cpu0) / (t1 - t0)


def main(quick: bool = False) -> None:
    n = 200 if quick else 1000
    probe = HardwareProbe(Settings(), "bench", nvml=NvmlReader(load_pynvml()))
    probe.snapshot()

    def baseline() -> None:
        psutil.cpu_percent(interval=None)
        psutil.virtual_memory()

    base = _timed(baseline, n)
    sample = _timed(probe.sample, n)
    inventory = _timed(probe.snapshot, n // 10)
    rows = [
        ["psutil cpu_percent + virtual_memory (baseline)", median(base) * 1e3, pct(base, 99) * 1e3, "1"],
        ["QAS full sensor sample", median(sample) * 1e3, pct(sample, 99) * 1e3,
         f"{median(sample) / median(base):.1f}"],
        ["QAS inventory + fingerprint + scores", median(inventory) * 1e3, pct(inventory, 99) * 1e3,
         f"{median(inventory) / median(base):.1f}"],
    ]  # fmt: skip
    print(table(["what", "median ms", "p99 ms", "x baseline"], rows))
    seconds = 5.0 if quick else 20.0
    share = asyncio.run(_cpu_share(seconds))
    verdict = "meets" if median(sample) <= 0.002 and share <= 0.005 else "MISSES"
    print(
        f"   observer service at 1 Hz for {seconds:g} s: {share * 100:.3f} % of one core "
        f"(process CPU time / wall time); {verdict} the targets (2 ms, 0.5 %)"
    )
