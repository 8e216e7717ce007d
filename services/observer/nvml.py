"""NVIDIA GPUs through NVML (``import pynvml``, from the nvidia-ml-py package).

The module is passed in, so tests drive the same code with a stand-in that has pynvml's
function names, return types and NVMLError subclasses. Every call may raise: NOT_SUPPORTED is
normal on consumer boards (that field stays None), GPU_IS_LOST drops the GPU from the inventory
(which changes the fingerprint), and no driver at all leaves a CPU-only host with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from shared.fingerprint import hash_identifier
from shared.gpu_tiers import cores_from_sms, gpu_tier, memory_bandwidth_gbps
from shared.messages import GpuInfo, GpuSensors, Missing

log = logging.getLogger("qas.observer.nvml")
T = TypeVar("T")

# Clock-event (formerly "throttle") reason bits, as in nvml.h.
REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
THERMAL_REASONS = 0x20 | 0x40


def load_pynvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    module: ModuleType = pynvml
    return module


class NvmlReader:
    def __init__(self, nvml: ModuleType | None) -> None:
        self.nvml = nvml
        self.ready = False
        self.tried = False
        self.error: str | None = "nvidia-ml-py is not installed" if nvml is None else None

    def start(self) -> None:
        """Initialise once; a host without a driver is not asked again on every sample."""
        if self.nvml is None or self.ready or self.tried:
            return
        self.tried = True
        try:
            self.nvml.nvmlInit()
            self.ready = True
            self.error = None
        except self.nvml.NVMLError as exc:
            self.error = f"NVML unavailable: {exc} (no NVIDIA driver?)"

    def stop(self) -> None:
        if self.ready and self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError:
                pass
            self.ready = False

    def _try(self, fn: Callable[[], T], what: str, missing: list[Missing]) -> T | None:
        assert self.nvml is not None
        try:
            return fn()
        except self.nvml.NVMLError_NotSupported:
            return None
        except self.nvml.NVMLError_GpuIsLost:
            raise
        except self.nvml.NVMLError as exc:
            missing.append(Missing(part=what, reason=str(exc)))
            return None

    def _handles(self, missing: list[Missing]) -> list[tuple[int, Any]]:
        if not self.ready:
            self.start()
        if not self.ready or self.nvml is None:
            missing.append(Missing(part="gpu", reason=self.error or "NVML not started"))
            return []
        n = self.nvml
        try:
            count = n.nvmlDeviceGetCount()
        except n.NVMLError as exc:
            missing.append(Missing(part="gpu", reason=f"nvmlDeviceGetCount: {exc}"))
            return []
        out = []
        for i in range(count):
            try:
                out.append((i, n.nvmlDeviceGetHandleByIndex(i)))
            except n.NVMLError as exc:
                missing.append(Missing(part=f"gpu{i}", reason=f"lost or unreadable: {exc}"))
        return out

    def inventory(self) -> tuple[list[GpuInfo], list[Missing]]:
        missing: list[Missing] = []
        gpus: list[GpuInfo] = []
        for i, h in self._handles(missing):
            try:
                gpus.append(self._gpu_info(i, h, missing))
            except self.nvml.NVMLError as exc:  # type: ignore[union-attr]
                missing.append(Missing(part=f"gpu{i}", reason=f"lost: {exc}"))
        return gpus, missing

    def _gpu_info(self, i: int, h: Any, missing: list[Missing]) -> GpuInfo:
        n = self.nvml
        assert n is not None
        name = n.nvmlDeviceGetName(h)
        name = name.decode() if isinstance(name, bytes) else str(name)
        total = n.nvmlDeviceGetMemoryInfo(h).total
        attrs = self._try(lambda: n.nvmlDeviceGetAttributes_v2(h), f"gpu{i}.attributes", missing)
        sms = None if attrs is None else int(attrs.multiprocessorCount)
        cc = self._try(lambda: n.nvmlDeviceGetCudaComputeCapability(h), f"gpu{i}.cc", missing)
        cores = self._try(lambda: n.nvmlDeviceGetNumGpuCores(h), f"gpu{i}.cores", missing)
        source = "nvml" if cores else "unknown"
        if not cores and sms and cc:
            cores = cores_from_sms(sms, int(cc[0]), int(cc[1]))
            source = "sm_table" if cores else "unknown"
        bus = self._try(lambda: n.nvmlDeviceGetMemoryBusWidth(h), f"gpu{i}.bus", missing)
        mem_clock = self._try(
            lambda: n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_MEM), f"gpu{i}.memclock", missing
        )
        sm_clock = self._try(
            lambda: n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_SM), f"gpu{i}.smclock", missing
        )
        uuid = self._try(lambda: n.nvmlDeviceGetUUID(h), f"gpu{i}.uuid", missing)
        if isinstance(uuid, bytes):
            uuid = uuid.decode()
        return GpuInfo(
            index=i,
            name=name,
            memory_total_bytes=int(total),
            sm_count=sms,
            cuda_cores=None if not cores else int(cores),
            cuda_cores_source=source,  # type: ignore[arg-type]
            compute_capability=None if cc is None else f"{cc[0]}.{cc[1]}",
            memory_bus_width_bits=bus,
            max_memory_clock_mhz=None if mem_clock is None else float(mem_clock),
            memory_bandwidth_gbps=(
                None if not bus or not mem_clock else memory_bandwidth_gbps(bus, mem_clock)
            ),
            boost_clock_mhz=None if sm_clock is None else float(sm_clock),
            tier=gpu_tier(name, int(total), None if not cores else int(cores)),
            uuid_sha256=None if not uuid else hash_identifier(str(uuid)),
        )

    def sensors(self) -> tuple[list[GpuSensors], list[Missing]]:
        missing: list[Missing] = []
        out: list[GpuSensors] = []
        n = self.nvml
        for i, h in self._handles(missing):
            assert n is not None
            try:
                out.append(self._gpu_sensors(n, i, h, missing))
            except n.NVMLError as exc:
                missing.append(Missing(part=f"gpu{i}", reason=f"lost: {exc}"))
        return out, missing

    def _gpu_sensors(self, n: Any, i: int, h: Any, missing: list[Missing]) -> GpuSensors:
        temp = self._try(
            lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU), f"gpu{i}.temp", missing
        )
        util = self._try(lambda: n.nvmlDeviceGetUtilizationRates(h), f"gpu{i}.util", missing)
        mem = n.nvmlDeviceGetMemoryInfo(h)
        power = self._try(lambda: n.nvmlDeviceGetPowerUsage(h), f"gpu{i}.power", missing)
        limit = self._try(lambda: n.nvmlDeviceGetEnforcedPowerLimit(h), f"gpu{i}.plimit", missing)
        bits = None
        if hasattr(n, "nvmlDeviceGetCurrentClocksEventReasons"):
            scratch: list[Missing] = []  # an old driver lacks it: not worth reporting
            bits = self._try(lambda: n.nvmlDeviceGetCurrentClocksEventReasons(h), "", scratch)
        if bits is None:  # drivers before 535 only have the deprecated name
            bits = self._try(
                lambda: n.nvmlDeviceGetCurrentClocksThrottleReasons(h), f"gpu{i}.reasons", missing
            )
        bits = int(bits or 0)
        return GpuSensors(
            index=i,
            temperature_celsius=None if temp is None else float(temp),
            utilization_ratio=None if util is None else util.gpu / 100.0,
            memory_used_bytes=int(mem.used),
            memory_free_bytes=int(mem.free),
            power_watts=None if power is None else power / 1000.0,
            power_limit_watts=None if limit is None else limit / 1000.0,
            throttle_reasons=[name for bit, name in REASONS.items() if bits & bit],
            thermal_throttling=bool(bits & THERMAL_REASONS),
        )
