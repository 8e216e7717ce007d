"""Per-host state the decider keeps between events, and how it becomes DecisionInputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.market_aggregate import RankedValues
from shared.messages import (
    DecisionInputs,
    Envelope,
    FeedbackReport,
    HardwareSnapshot,
    MarketEntropy,
    PriorState,
    ProfitPotential,
    SensorReading,
)
from shared.precision import platform_top_bits

NEUTRAL = 0.5  # an input never received counts as mid-band, and lowers confidence


@dataclass(frozen=True, slots=True)
class SymbolMarket:
    """One symbol's latest values derived from its ticks (the host aggregate is made of these)."""

    entropy: float
    profit: float
    confidence: float
    note: str
    event_time: float


@dataclass
class HostState:
    hardware: HardwareSnapshot | None = None
    sensors: SensorReading | None = None
    entropy: MarketEntropy | None = None
    profit: ProfitPotential | None = None
    prior: PriorState = field(default_factory=PriorState)
    pending_change: bool = False  # a collapse not yet turned into a decision
    feedback: FeedbackReport | None = None  # the engine's latest report (qas.feedback)
    # The sequence epoch of the last decision published for this host, by any decider: a
    # decider taking the host over never stamps a lower one (the applier would refuse it).
    epoch: int = 0
    seen_at: float = 0.0  # the decider's clock when an input for this host last arrived
    # symbol -> its latest derived values; bounded with the decider's tick estimators.
    symbols: dict[str, SymbolMarket] = field(default_factory=dict)
    symbols_changed: bool = False  # a tick since the host aggregate was last folded in
    # The symbols' values kept ranked as they change; and whether the host's ticks came in
    # event-time order, so that the first of ``symbols`` (kept in update order) is the oldest.
    ranked_entropy: RankedValues = field(default_factory=RankedValues)
    ranked_profit: RankedValues = field(default_factory=RankedValues)
    ticks_in_order: bool = True
    newest_tick: float = 0.0  # the newest event time among the host's symbols

    def observe_hardware(self, snap: HardwareSnapshot) -> None:
        known = self.hardware.fingerprint if self.hardware is not None else None
        if snap.changed or (known is not None and known != snap.fingerprint):
            self.pending_change = True
        elif known is None and self.prior.sequence > 0:
            # Decisions already went out without hardware (SUPERPOSITION, low confidence): the
            # first snapshot collapses them, or the stabiliser would hold the unconfident one.
            self.pending_change = True
        self.hardware = snap

    def inputs(self, now: float, top_bits: int | None = None) -> DecisionInputs:
        hw, sn = self.hardware, self.sensors

        def age(m: Envelope | None) -> float | None:
            return None if m is None else max(0.0, now - m.event_time)

        gpu_free = None
        if sn is not None and sn.gpus:
            frees = [g.memory_free_bytes for g in sn.gpus if g.memory_free_bytes is not None]
            gpu_free = sum(frees) if frees else None
        return DecisionInputs(
            market_entropy=NEUTRAL if self.entropy is None else self.entropy.value,
            profit_potential=NEUTRAL if self.profit is None else self.profit.value,
            thermal_state=0.0 if sn is None else sn.thermal_state,
            entropy_age_seconds=age(self.entropy),
            profit_age_seconds=age(self.profit),
            sensors_age_seconds=age(sn),
            hardware_changed=self.pending_change,
            fingerprint=None if hw is None else hw.fingerprint,
            coherence_score=0.0 if hw is None else hw.scores.coherence_score,
            harmonic_coherence=0.0 if hw is None else hw.scores.harmonic_coherence,
            effective_memory_bytes=0 if hw is None else hw.inventory.effective_memory_bytes,
            memory_available_bytes=None if sn is None else sn.memory_available_bytes,
            effective_cores=1.0 if hw is None else hw.inventory.effective_cores,
            gpu_free_bytes=gpu_free,
            thermal_throttling=False if sn is None else sn.thermal_throttling,
            top_precision_bits=80 if (top_bits or platform_top_bits()) == 80 else 64,
            market_confidence=1.0 if self.entropy is None else self.entropy.confidence,
            market_note="" if self.entropy is None else self.entropy.note,
            feedback=self.feedback,
            feedback_age_seconds=age(self.feedback),
        )
