"""The actuator protocol: what the applier and the in-process library enact through."""

from __future__ import annotations

from typing import Protocol

from shared.messages import ActuatorResult, ScalingDecision


class Enactor(Protocol):
    """One thing the applier changes (a memory pool, a cgroup, a GPU power limit)."""

    def enact(self, d: ScalingDecision) -> ActuatorResult: ...
