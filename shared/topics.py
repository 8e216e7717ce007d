"""The one topic table: each topic's role, default name, message, retention and who uses it.

Services' routes, the bus's topic creation and the README's topic list all read ``TABLE``. A new
topic is a row here plus its field in ``Topics`` (a test fails if the two disagree), its Struct in
``shared/messages.py`` and a handler in the service that consumes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgspec import Struct

from shared.messages import (
    ApplyResult,
    DeadLetter,
    FeedbackReport,
    HardwareSnapshot,
    MarketEntropy,
    PriceTick,
    ProfitPotential,
    ScalingDecision,
    SensorReading,
)


@dataclass(frozen=True)
class TopicSpec:
    role: str  # the field of ``Topics`` that holds its configured name
    default: str
    message: type[Struct]
    compacted: bool
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    content: str


TABLE: tuple[TopicSpec, ...] = (
    TopicSpec("hardware", "qas.hardware", HardwareSnapshot, True, ("observer",),
              ("decider", "applier"),
              "inventory, SHA-256 fingerprint, capability scores; at start and on change"),
    TopicSpec("sensors", "qas.sensors", SensorReading, False, ("observer",),
              ("decider", "applier"),
              "utilisation, memory, temperatures, GPU readings, Pi throttle flags, `thermal_state`"),
    TopicSpec("entropy", "market.entropy", MarketEntropy, False, ("engine",), ("decider",),
              "market entropy (volatility): `value` in [0, 1]"),
    TopicSpec("profit", "market.profit", ProfitPotential, False, ("engine",), ("decider",),
              "profit potential: `value` in [0, 1]"),
    TopicSpec("ticks", "market.ticks", PriceTick, False, ("engine", "replay"),
              ("decider", "applier"),
              "`symbol`, `price`; QAS derives entropy and a profit heuristic from them"),
    TopicSpec("decisions", "qas.decisions", ScalingDecision, False, ("decider",),
              ("applier", "engine"),
              "the scaling decision, its inputs, reasons and prior state; signed (HMAC-SHA256, key id)"),
    TopicSpec("applied", "qas.applied", ApplyResult, False, ("applier",), ("engine",),
              "`applied`, `skipped`, `failed` or `rejected` (failed verification), with the reason "
              "and the engine config"),
    TopicSpec("feedback", "qas.feedback", FeedbackReport, False, ("engine",), ("decider",),
              "engine batch latency p50/p99 against its objective, throughput, resident memory "
              "against its limit, queue depth, dropped and late ticks"),
    TopicSpec("dlq", "qas.dlq", DeadLetter, False, ("observer", "decider", "applier"), (),
              "rejected messages, original bytes base64-encoded, with the reason"),
)  # fmt: skip

BY_ROLE: dict[str, TopicSpec] = {s.role: s for s in TABLE}


def _d(role: str) -> str:
    return BY_ROLE[role].default


class Topics(Struct, frozen=True, kw_only=True):
    """The configured topic names, one field per row of ``TABLE``."""

    hardware: str = _d("hardware")
    sensors: str = _d("sensors")
    entropy: str = _d("entropy")
    profit: str = _d("profit")
    ticks: str = _d("ticks")
    decisions: str = _d("decisions")
    applied: str = _d("applied")
    feedback: str = _d("feedback")
    dlq: str = _d("dlq")

    def name(self, role: str) -> str:
        value: str = getattr(self, role)
        return value

    def all(self) -> list[str]:
        """Every topic, for the bus to create."""
        return [self.name(s.role) for s in TABLE]

    def compacted(self) -> list[str]:
        return [self.name(s.role) for s in TABLE if s.compacted]

    def consumed_by(self, service: str) -> list[TopicSpec]:
        return [s for s in TABLE if service in s.consumers]
