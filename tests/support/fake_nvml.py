"""An NVML stand-in for hosts this machine cannot be: same function names, return shapes and
the real pynvml NVMLError subclasses, so the observer's NVML code runs unchanged against it.

Build one with FakeGpu specs; a spec may raise NOT_SUPPORTED for chosen calls, and a GPU can be
lost (GPU_IS_LOST) or removed between samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

GIB = 1 << 30


@dataclass
class FakeGpu:
    name: str
    memory_total: int
    sm_count: int
    cc: tuple[int, int]
    num_cores: int | None  # None: nvmlDeviceGetNumGpuCores is NOT_SUPPORTED (older drivers)
    bus_width: int
    max_mem_clock: int
    max_sm_clock: int
    uuid: str
    temperature: int = 45
    utilization: int = 10
    memory_used: int = 512 << 20
    power_mw: int = 60_000
    power_limit_mw: int = 200_000
    reasons: int = 0x1
    not_supported: set[str] = field(default_factory=set)
    lost: bool = False


RTX_3060_TI = FakeGpu("NVIDIA GeForce RTX 3060 Ti", 8 * GIB, 38, (8, 6), None, 256, 7001, 1665,
                      "GPU-5a2e9f1c-0000-4c1e-9c1d-3060ti000001")  # fmt: skip
A100_40GB = FakeGpu("NVIDIA A100-PCIE-40GB", 40 * GIB, 108, (8, 0), 6912, 5120, 1215, 1410,
                    "GPU-a100a100-1111-4c1e-9c1d-a100000000001")  # fmt: skip
RTX_4090 = FakeGpu("NVIDIA GeForce RTX 4090", 24 * GIB, 128, (8, 9), 16384, 384, 10501, 2520,
                   "GPU-40904090-2222-4c1e-9c1d-409000000001")  # fmt: skip


class FakeNvml:
    """Quacks like the pynvml module for the calls QAS makes."""

    NVMLError = pynvml.NVMLError
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
    NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded
    NVMLError_NoPermission = pynvml.NVMLError_NoPermission
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(self, gpus: list[FakeGpu], *, driver: bool = True) -> None:
        self.gpus = list(gpus)
        self.driver = driver
        self.initialised = False
        self.calls: list[str] = []
        self.power_limits_set: list[tuple[int, int]] = []

    # --- lifecycle
    def nvmlInit(self) -> None:
        if not self.driver:
            raise pynvml.NVMLError_DriverNotLoaded()
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        gpu = self.gpus[i]
        if gpu.lost:
            raise pynvml.NVMLError_GpuIsLost()
        return gpu

    def _check(self, gpu: FakeGpu, call: str) -> None:
        self.calls.append(call)
        if gpu.lost:
            raise pynvml.NVMLError_GpuIsLost()
        if call in gpu.not_supported:
            raise pynvml.NVMLError_NotSupported()

    # --- inventory
    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        self._check(h, "name")
        return h.name

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu) -> Any:
        self._check(h, "memory")
        return SimpleNamespace(
            total=h.memory_total, used=h.memory_used, free=h.memory_total - h.memory_used
        )

    def nvmlDeviceGetAttributes_v2(self, h: FakeGpu) -> Any:
        self._check(h, "attributes")
        return SimpleNamespace(multiprocessorCount=h.sm_count)

    def nvmlDeviceGetCudaComputeCapability(self, h: FakeGpu) -> tuple[int, int]:
        self._check(h, "cc")
        return h.cc

    def nvmlDeviceGetNumGpuCores(self, h: FakeGpu) -> int:
        self._check(h, "cores")
        if h.num_cores is None:
            raise pynvml.NVMLError_NotSupported()
        return h.num_cores

    def nvmlDeviceGetMemoryBusWidth(self, h: FakeGpu) -> int:
        self._check(h, "bus")
        return h.bus_width

    def nvmlDeviceGetMaxClockInfo(self, h: FakeGpu, clock: int) -> int:
        self._check(h, "maxclock")
        return h.max_mem_clock if clock == pynvml.NVML_CLOCK_MEM else h.max_sm_clock

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        self._check(h, "uuid")
        return h.uuid

    # --- sensors
    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        self._check(h, "temperature")
        return h.temperature

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> Any:
        self._check(h, "utilization")
        return SimpleNamespace(gpu=h.utilization, memory=h.utilization // 2)

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        self._check(h, "power")
        return h.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        self._check(h, "power_limit")
        return h.power_limit_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeGpu) -> int:
        self._check(h, "clock_events")
        return h.reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: FakeGpu) -> int:
        self._check(h, "throttle_reasons")
        return h.reasons

    # --- actuation
    def nvmlDeviceGetPowerManagementLimitConstraints(self, h: FakeGpu) -> tuple[int, int]:
        self._check(h, "power_constraints")
        return 100_000, 250_000

    def nvmlDeviceSetPowerManagementLimit(self, h: FakeGpu, milliwatts: int) -> None:
        self._check(h, "set_power_limit")
        self.power_limits_set.append((self.gpus.index(h), milliwatts))
        h.power_limit_mw = milliwatts
