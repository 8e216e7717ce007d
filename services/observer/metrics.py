"""The observer's Prometheus metrics, on a registry of its own (one per instance, no global state).

GPU indices and hosts are bounded by the hardware and by ``LabelBound``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.telemetry import LabelBound
from shared.messages import HardwareSnapshot, SensorReading

MAX_HOSTS = 64
MAX_GPUS = 16


class ObserverMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.host = LabelBound(MAX_HOSTS)
        self.gpu = LabelBound(MAX_GPUS)
        self.snapshots = Counter(
            "qas_hardware_snapshots", "Hardware inventories published", ["host"], registry=r
        )
        self.fingerprint_changes = Counter(
            "qas_hardware_fingerprint_changes",
            "Hardware fingerprint changes seen by the observer (quantum collapses)",
            ["host"],
            registry=r,
        )
        self.sensor_readings = Counter(
            "qas_sensor_readings", "Sensor readings published", ["host"], registry=r
        )
        self.sample_errors = Counter(
            "qas_sensor_sample_errors", "Sensor samples that failed", registry=r
        )
        self.gpu_memory_used = Gauge(
            "qas_gpu_memory_used_bytes", "GPU memory in use", ["host", "gpu"], registry=r
        )
        self.gpu_memory_total = Gauge(
            "qas_gpu_memory_total_bytes", "GPU memory in all", ["host", "gpu"], registry=r
        )
        self.kafka_connected = Gauge(
            "qas_kafka_connected", "1 when the bus is connected (always 1 in-process)", registry=r
        )

    def observe_snapshot(self, snap: HardwareSnapshot) -> None:
        h = self.host(snap.host_id)
        self.snapshots.labels(h).inc()
        changes = self.fingerprint_changes.labels(h)  # shows at 0 from the first inventory
        if snap.changed:
            changes.inc()
        for g in snap.inventory.gpus:
            self.gpu_memory_total.labels(h, self.gpu(str(g.index))).set(g.memory_total_bytes)

    def observe_reading(self, s: SensorReading) -> None:
        h = self.host(s.host_id)
        self.sensor_readings.labels(h).inc()
        for g in s.gpus:
            if g.memory_used_bytes is not None:
                self.gpu_memory_used.labels(h, self.gpu(str(g.index))).set(g.memory_used_bytes)
