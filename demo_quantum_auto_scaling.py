"""The seed's demo: `python demo_quantum_auto_scaling.py` (or `make demo`).

Detects this machine, prints the quantum chamber status, exercises the four triggers (hardware
observer, market entropy, thermal mirror, profit harmonic), replays the shipped S&P 500 sample
through the embedded pipeline and shows the decisions with their reasons. Under a minute.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import msgspec

from app.replay import replay
from app.runtime import Options
from core.quantum_auto_scaler import QuantumAutoScaler
from shared.csvseries import read_series
from shared.data import SAMPLE
from shared.decision import decide
from shared.messages import ScalingDecision

GIB = 1 << 30


def show(title: str, d: ScalingDecision, applied: bool | None = None) -> None:
    state = "" if applied is None else ("  -> applied" if applied else "  -> not applied")
    print(f"\n{title}\n  factor {d.scaling_factor:.2f}, memory x{d.memory_adjustment:.2f}, "
          f"precision {d.precision_tier}, batch {d.batch_size}, workers {d.workers}, "
          f"confidence {d.confidence:.2f}, {d.quantum_state}{state}")  # fmt: skip
    for reason in d.reasons:
        print(f"    - {reason}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print("QAS demo: the Quantum Auto-Scaling System on this machine\n" + "=" * 58)
    scaler = QuantumAutoScaler()
    hw, inv = scaler.hardware, scaler.hardware.inventory
    print(f"hardware: {inv.cpu_model}, {inv.logical_cores} cores, "
          f"{inv.effective_memory_bytes / GIB:.1f} GiB"
          + "".join(f", {g.name} ({g.tier})" for g in inv.gpus)
          + ("" if inv.gpus else ", no NVIDIA GPU"))  # fmt: skip
    print(f"fingerprint (SHA-256 of the stable inventory): {hw.fingerprint}")
    status = scaler.get_quantum_chamber_status()
    print(f"chamber: state {status['quantum_state']}, coherence {status['coherence_score']:.3f}, "
          f"entanglement {status['entanglement_strength']:.3f}, "
          f"harmonic coherence {status['harmonic_coherence']:.3f}")  # fmt: skip

    print("\n-- the four triggers " + "-" * 38)
    for title, e, t, p in [
        ("normal conditions (all inputs 0.5/0.3/0.5)", 0.5, 0.3, 0.5),
        ("market entropy trigger (entropy 0.9)", 0.9, 0.3, 0.5),
        ("thermal mirror trigger (thermal 0.9)", 0.5, 0.9, 0.5),
        ("profit harmonic trigger (profit 0.9)", 0.5, 0.3, 0.9),
    ]:
        d = scaler.compute_quantum_scaling(market_entropy=e, thermal_state=t, profit_potential=p)
        show(title, d, scaler.apply_scaling_decision(d))
    # A real collapse needs the hardware to change (a GPU lost, a cgroup limit lowered); the
    # demo shows what the decider does with one by feeding the core a changed-hardware input.
    last = scaler.chamber_state.last_decision
    assert last is not None
    collapse, _ = decide(msgspec.structs.replace(last.inputs, hardware_changed=True), last.prior,
                         host_id=scaler.host_id, now=last.event_time + 1,
                         c=scaler.settings.decision)  # fmt: skip
    assert collapse is not None
    show("hardware observer trigger (simulated: the observer reported a new fingerprint)", collapse)

    print("\n-- replay of the shipped sample " + "-" * 27)
    series = read_series(SAMPLE)
    print(f"{SAMPLE.name}: {series.summary()}, {series.layout} layout")
    result = asyncio.run(replay(Options(metrics_port=None), series, symbol="SPX"))
    ds = result.decisions
    print(f"{len(ds)} decisions, {result.applied} applied")
    if ds:
        top = max(ds, key=lambda d: d.scaling_factor)
        calm = min(ds, key=lambda d: (d.inputs.market_entropy, d.event_time))
        from datetime import UTC, datetime

        for label, d in (("the strongest scale-up", top), ("the calmest market", calm)):
            day = datetime.fromtimestamp(d.event_time, UTC).date()
            show(f"{label}: {day}", d)
    status = scaler.get_quantum_chamber_status()
    print(f"\nchamber after the demo: {status['quantum_state']}, scaling multiplier "
          f"{status['scaling_multiplier']:.3f}, memory config {status['memory_config']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
