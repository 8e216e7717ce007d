"""Prometheus metrics, on a registry of our own (no global state), served by the process's
one /metrics page (services/telemetry.py ``Page``).

Conventions: base units (_seconds, _bytes, _celsius), _ratio for 0-1 values, _total counters.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from services.telemetry import LabelBound
from shared.freshness import FreshnessFault
from shared.signing import SignatureFault
from shared.tiers import ALL_BITS

if TYPE_CHECKING:
    from services.applier.pool import TieredPool

from shared.messages import ApplyResult, HardwareSnapshot, ScalingDecision, SensorReading

# Label values are these fixed codes, never text from the message (bounded cardinality).
REJECT_REASONS: tuple[str, ...] = (*get_args(SignatureFault), *get_args(FreshnessFault))


class Metrics:
    def __init__(self, sensor_limit: int = 64) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # Sensor names come from the bus: at most this many series per host, the rest "other".
        self.sensor_limit = sensor_limit
        self._sensors: dict[str, LabelBound] = {}
        self.scaling_factor = Gauge(
            "qas_scaling_factor", "Scaling factor of the last decision", ["host"], registry=r
        )
        self.memory_adjustment = Gauge(
            "qas_memory_adjustment",
            "Memory adjustment multiplier (0.1-2.0) of the last decision",
            ["host"],
            registry=r,
        )
        self.memory_budget = Gauge(
            "qas_memory_budget_bytes", "Memory budget of the last decision", ["host"], registry=r
        )
        self.precision_bytes = Gauge(
            "qas_precision_bytes",
            "Bytes per value of the last decision's precision tier (block8 1, block16 2, extended80 10)",
            ["host"],
            registry=r,
        )
        self.coherence = Gauge(
            "qas_coherence_ratio", "Capability coherence score (0-1)", ["host"], registry=r
        )
        self.confidence = Gauge(
            "qas_confidence_ratio", "Confidence of the last decision (0-1)", ["host"], registry=r
        )
        self.thermal = Gauge(
            "qas_thermal_state_ratio",
            "Thermal state (0 idle, 1 at the throttle point)",
            ["host"],
            registry=r,
        )
        self.decisions = Counter(
            "qas_decisions",
            "Decisions received, by trigger ('none' when none fired)",
            ["trigger"],
            registry=r,
        )
        self.applies = Counter("qas_applies", "Apply results, by result", ["result"], registry=r)
        self.rejected = Counter(
            "qas_decisions_rejected",
            "Decisions refused before acting: failed signature or replay checks, by reason",
            ["reason"],
            registry=r,
        )
        for reason in REJECT_REASONS:  # every reason shows, at 0, from the start
            self.rejected.labels(reason)
        self.latency = Histogram(
            "qas_decision_apply_latency_seconds",
            "Decision event time to apply result",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.pool_bytes = Gauge(
            "qas_pool_bytes", "Bytes held by tiered memory pools", ["pool", "tier"], registry=r
        )
        self.pool_budget = Gauge(
            "qas_pool_budget_bytes", "Budget of each tiered memory pool", ["pool"], registry=r
        )
        self.pool_error = Gauge(
            "qas_pool_error_bound_ratio",
            "Largest relative error bound of stored values",
            ["pool"],
            registry=r,
        )
        self.hardware_changes = Counter(
            "qas_hardware_changes",
            "Hardware fingerprint changes (quantum collapses)",
            ["host"],
            registry=r,
        )
        self.temperature = Gauge(
            "qas_temperature_celsius", "Temperature per sensor", ["host", "sensor"], registry=r
        )
        self.kafka_connected = Gauge(
            "qas_kafka_connected", "1 when the bus is connected (always 1 in-process)", registry=r
        )
        self._dead: dict[str, Tally[str]] = {}
        r.register(_DeadLetters(self._dead))

    def watch_dead_letters(self, service: str, stats: Tally[str]) -> None:
        """Export a service's dead-letter count (the consume loop keeps it in its stats)."""
        self._dead[service] = stats

    def observe_pool(self, pool: TieredPool, name: str = "prices") -> None:
        by_tier = pool.bytes_by_tier()
        for bits in ALL_BITS:
            self.pool_bytes.labels(name, str(bits)).set(by_tier.get(bits, 0))
        self.pool_bytes.labels(name, "reserve").set(pool.reserved_bytes)
        self.pool_budget.labels(name).set(pool.budget_bytes)
        self.pool_error.labels(name).set(pool.error_bound())

    def observe_decision(self, d: ScalingDecision) -> None:
        h = d.host_id
        self.scaling_factor.labels(h).set(d.scaling_factor)
        self.memory_adjustment.labels(h).set(d.memory_adjustment)
        self.memory_budget.labels(h).set(d.memory_budget_bytes)
        self.precision_bytes.labels(h).set(d.precision_bits / 8)
        self.coherence.labels(h).set(d.coherence_score)
        self.confidence.labels(h).set(d.confidence)
        triggers: list[str] = [*d.triggers]
        for trigger in triggers or ["none"]:
            self.decisions.labels(trigger).inc()

    def observe_apply(self, result: ApplyResult) -> None:
        self.applies.labels(result.status).inc()
        if result.status == "applied":
            self.latency.observe(max(0.0, result.event_time - result.decision_event_time))

    def observe_rejection(self, code: str, result: ApplyResult) -> None:
        self.rejected.labels(code).inc()
        self.observe_apply(result)

    def observe_sensors(self, s: SensorReading) -> None:
        self.thermal.labels(s.host_id).set(s.thermal_state)
        bound = self._sensors.get(s.host_id)
        if bound is None:
            bound = self._sensors[s.host_id] = LabelBound(self.sensor_limit)
        for t in s.temperatures:
            self.temperature.labels(s.host_id, bound(t.sensor)).set(t.celsius)
        for g in s.gpus:
            if g.temperature_celsius is not None:
                self.temperature.labels(s.host_id, f"gpu{g.index}").set(g.temperature_celsius)

    def observe_hardware(self, snap: HardwareSnapshot) -> None:
        if snap.changed:
            self.hardware_changes.labels(snap.host_id).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

class _DeadLetters(Collector):
    def __init__(self, sources: dict[str, Tally[str]]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "qas_dead_letters", "Messages sent to the dead-letter topic", labels=["service"]
        )
        for service, stats in self.sources.items():
            family.add_metric([service], stats.get("dead_letters", 0))
        yield family
