"""The seed's in-process API, over the same pure core as the decider service and the same
adoption gate as the engine client (``core.engine``); pass ``enactors=[EngineStore(...)]`` to hold
the engine's arrays at the decided tier, and ``report_feedback`` to close the loop.

    from core.quantum_auto_scaler import QuantumAutoScaler
    quantum_scaler = QuantumAutoScaler()
    decision = quantum_scaler.compute_quantum_scaling(
        market_entropy=0.5, thermal_state=0.3, profit_potential=0.8)
    if decision.confidence > 0.7:
        quantum_scaler.apply_scaling_decision(decision)
    memory_config = quantum_scaler.chamber_state.memory_config
    status = quantum_scaler.get_quantum_chamber_status()

By default each call answers its own inputs directly (the caller's loop is the control loop);
``QuantumAutoScaler(stabilize=True)`` adds the service's stabiliser (tolerance band, scale-down
window, bounded step) and then a call may return the previous decision unchanged.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.engine.follow import Adopter, Verify
from services.observer.nvml import NvmlReader, load_pynvml
from services.observer.probe import HardwareProbe
from shared.config import Settings
from shared.decision import check_inputs, decide
from shared.enactor import Enactor
from shared.hoststate import HostState
from shared.messages import (
    FeedbackReport,
    HardwareSnapshot,
    MarketEntropy,
    ProfitPotential,
    ScalingDecision,
    SensorReading,
)

__all__ = ["ChamberState", "QuantumAutoScaler", "ScalingDecision"]


@dataclass
class ChamberState:
    """What the chamber holds now; ``memory_config`` is what the engine should use."""

    quantum_state: str = "SUPERPOSITION"
    coherence_score: float = 0.0
    scaling_multiplier: float = 1.0
    memory_config: dict[str, Any] = field(default_factory=dict)
    last_decision: ScalingDecision | None = None
    applied_decision_id: str | None = None
    last_skip_reason: str | None = None


class QuantumAutoScaler:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        host_id: str | None = None,
        probe: HardwareProbe | None = None,
        stabilize: bool = False,
        enactors: Sequence[Enactor] = (),
        clock: Callable[[], float] = time.time,
        verify: Verify | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.host_id = host_id or self.settings.host_id or socket.gethostname()
        self.clock = clock
        self.probe = probe or HardwareProbe(
            self.settings, self.host_id, nvml=NvmlReader(load_pynvml()), clock=clock
        )
        self.stabilize = stabilize
        self.enactors = list(enactors)
        self.hardware: HardwareSnapshot = self.probe.snapshot()
        self._host = HostState()
        self._host.observe_hardware(self.hardware)
        # The engine client's adoption gate (core/engine/follow.py): one implementation.
        self._adopter = Adopter(self.host_id, self.settings.applier, verify, clock)
        self._live: SensorReading | None = None
        # Observing the hardware is what ends SUPERPOSITION: the chamber starts collapsed onto it.
        self.chamber_state = ChamberState(
            quantum_state="COLLAPSED", coherence_score=self.hardware.scores.coherence_score
        )

    def _live_sample(self, now: float) -> SensorReading:
        """Free memory and GPU memory for sizing, re-read at most once per sensor interval (as
        the observer service does): a trading loop calls this every cycle."""
        if (
            self._live is None
            or now - self._live.event_time >= self.settings.sensor_interval_seconds
        ):
            self._live = self.probe.sample()
        return self._live

    def measured_thermal_state(self) -> float:
        return self.probe.sample().thermal_state

    def observe_hardware(self) -> HardwareSnapshot:
        """Re-read the inventory; a change makes the next decision a re-plan (collapse)."""
        self.hardware = self.probe.snapshot()
        self._host.observe_hardware(self.hardware)
        return self.hardware

    def compute_quantum_scaling(
        self, market_entropy: float, thermal_state: float, profit_potential: float
    ) -> ScalingDecision:
        """One decision for these inputs on this machine. ValueError on NaN/inf/out-of-range."""
        check_inputs(market_entropy, thermal_state, profit_potential)
        now = self.clock()
        live = self._live_sample(now)
        h = self._host
        h.sensors = msgspec.structs.replace(
            live, event_time=now, thermal_state=float(thermal_state), thermal_throttling=False
        )
        h.entropy = MarketEntropy(event_time=now, host_id=self.host_id, value=float(market_entropy))
        h.profit = ProfitPotential(
            event_time=now, host_id=self.host_id, value=float(profit_potential)
        )
        decision, h.prior = decide(
            h.inputs(now),
            h.prior,
            host_id=self.host_id,
            now=now,
            c=self.settings.decision,
            stabilize=self.stabilize,
        )
        if decision is None:  # the stabiliser held: the standing decision stays in force
            assert self.chamber_state.last_decision is not None
            return self.chamber_state.last_decision
        h.pending_change = False
        self.chamber_state.last_decision = decision
        self.chamber_state.quantum_state = decision.quantum_state
        self.chamber_state.coherence_score = decision.coherence_score
        return decision

    def apply_scaling_decision(self, decision: ScalingDecision) -> bool:
        """Enact it when the gate allows (confidence, age, order); True when applied."""
        if self.chamber_state.applied_decision_id == decision.decision_id:
            return True  # idempotent
        reason = self._adopter.check(decision)
        self.chamber_state.last_skip_reason = reason
        if reason is not None:
            return False
        outcomes = [e.enact(decision) for e in self.enactors]
        if any(o.status == "failed" for o in outcomes):
            self.chamber_state.last_skip_reason = "; ".join(o.detail for o in outcomes)
            return False
        self._adopter.adopt(decision)
        cs = self.chamber_state
        cs.applied_decision_id = decision.decision_id
        cs.scaling_multiplier = decision.scaling_factor
        cs.memory_config = {
            "scaling_factor": decision.scaling_factor,
            "memory_adjustment": decision.memory_adjustment,
            "memory_budget_bytes": decision.memory_budget_bytes,
            "precision_bits": decision.precision_bits,
            "precision_tier": decision.precision_tier,
            "batch_size": decision.batch_size,
            "workers": decision.workers,
        }
        return True

    def report_feedback(self, report: FeedbackReport) -> None:
        """Engine feedback (as on ``qas.feedback``): the next decision tracks its latency
        objective and memory limit (shared/feedback.py)."""
        self._host.feedback = report

    def get_quantum_chamber_status(self) -> dict[str, Any]:
        cs, hw = self.chamber_state, self.hardware
        d = cs.last_decision
        return {
            "quantum_state": cs.quantum_state,
            "coherence_score": cs.coherence_score,
            "scaling_multiplier": cs.scaling_multiplier,
            "entropy_value": 1.0 - cs.coherence_score,
            "entanglement_strength": hw.scores.entanglement_strength,
            "harmonic_coherence": hw.scores.harmonic_coherence,
            "fingerprint": hw.fingerprint,
            "quantum_phase": None if d is None else d.quantum_phase,
            "confidence": None if d is None else d.confidence,
            "triggers": [] if d is None else list(d.triggers),
            "reasons": [] if d is None else list(d.reasons),
            "memory_config": dict(cs.memory_config),
            "last_skip_reason": cs.last_skip_reason,
            "missing": [f"{m.part}: {m.reason}" for m in hw.missing],
        }
