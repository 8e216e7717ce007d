"""Replay protection for decisions: the event-time window and the per-host sequence.

A verified decision is still refused when it is outside the window around this host's clock
(default 30 s old, 5 s ahead), or when its (sequence_epoch, sequence) is not newer than the
last one applied for its host. Exact redeliveries are answered earlier, by decision id.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from shared.config import ApplierConstants
from shared.messages import ScalingDecision

FreshnessFault = Literal["stale", "future", "replayed_sequence"]


class Watermark(Struct, frozen=True):
    """The newest decision applied for one host."""

    epoch: int
    sequence: int


def watermark(d: ScalingDecision) -> Watermark:
    return Watermark(d.sequence_epoch, d.sequence)


def freshness_fault(
    d: ScalingDecision, last: Watermark | None, now: float, c: ApplierConstants
) -> tuple[FreshnessFault, str] | None:
    """None when ``d`` may be considered, else (code, reason)."""
    age = now - d.event_time
    if age > c.max_decision_age_seconds:
        return "stale", f"decided {age:.1f} s ago (limit {c.max_decision_age_seconds:g} s)"
    if -age > c.max_decision_future_seconds:
        return "future", (f"event time {-age:.1f} s ahead of this host's clock "
                          f"(limit {c.max_decision_future_seconds:g} s)")  # fmt: skip
    if last is not None and (d.sequence_epoch, d.sequence) <= (last.epoch, last.sequence):
        return "replayed_sequence", (f"sequence {d.sequence} (epoch {d.sequence_epoch}) is not "
                                     f"newer than {last.sequence} (epoch {last.epoch}), the last "
                                     f"applied for this host")  # fmt: skip
    return None
