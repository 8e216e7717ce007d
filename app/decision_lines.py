"""Decisions and apply results as a person reads them: what `qas decide` prints, and the line
`qas run` prints for each decision and apply result when not asked for --json.

One formatter for each message, so the two commands cannot drift apart.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO

from shared.messages import ApplyResult, ScalingDecision


def decision_fields(d: ScalingDecision) -> tuple[str, str]:
    """The decision's numbers as two groups: what is sized, and how it is run."""
    sized = (f"scaling factor {d.scaling_factor:.3f}   memory x{d.memory_adjustment:.2f} "
             f"({d.memory_budget_bytes / 2**30:.2f} GiB budget)   precision {d.precision_tier}")  # fmt: skip
    run = (f"batch {d.batch_size}   workers {d.workers}   confidence {d.confidence:.2f}   "
           f"state {d.quantum_state}   coherence {d.coherence_score:.3f}")  # fmt: skip
    return sized, run


def decision_text(d: ScalingDecision) -> str:
    """`qas decide`: the numbers on two lines, then each reason on its own line."""
    sized, run = decision_fields(d)
    return "\n".join([sized, run, "why:", *(f"  - {reason}" for reason in d.reasons)])


def _clock(event_time: float) -> str:
    return datetime.fromtimestamp(event_time).strftime("%H:%M:%S")


def decision_line(d: ScalingDecision) -> str:
    """One line per decision (`qas run`): when, which, the numbers, and why."""
    sized, run = decision_fields(d)
    why = " ".join(d.reasons) or "-"
    return f"{_clock(d.event_time)} decision #{d.sequence}   {sized}   {run}   why: {why}"


def applied_line(r: ApplyResult) -> str:
    """One line per apply result (`qas run`): its status, how long it took, what each
    actuator did."""
    took = f"{r.duration_seconds * 1000:.1f} ms"
    parts = [f"{_clock(r.event_time)} applied  #{r.decision_id.rsplit('-', 1)[-1]}   "
             f"{r.status} in {took}"]  # fmt: skip
    if r.reason:
        parts.append(r.reason)
    parts += [f"{a.actuator}: {a.status}{' (dry run)' if a.dry_run else ''}"
              + (f", {a.detail}" if a.detail else "") for a in r.actuators]  # fmt: skip
    return "   ".join(parts)


class HumanLines:
    """`qas run` without --json: a readable line on stdout for every decision published and
    apply result, so the pipeline is seen working from its first decision."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.counts = {"decision": 0, "applied": 0}

    def _write(self, kind: str, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()
        self.counts[kind] += 1

    def decision(self, d: ScalingDecision) -> None:
        self._write("decision", decision_line(d))

    def applied(self, r: ApplyResult) -> None:
        self._write("applied", applied_line(r))
