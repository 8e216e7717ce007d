"""Following decisions: the gate (host, verification, confidence, age, order) and the follower.

``Adopter`` is the one adoption rule, shared by the engine client and the seed's in-process
``QuantumAutoScaler``: a decision for this host is adopted when the ``verify`` hook accepts it
(signature checking plugs in here), its confidence passes the gate, it is fresh, and it is newer
than the one in force. ``DecisionFollower`` reads ``qas.decisions`` from any bus and yields each
adopted decision with the time it was adopted; of the decisions read together, the newest that
passes wins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from services.bus.base import Bus
from shared.apply_policy import skip_reason
from shared.config import ApplierConstants, Settings
from shared.messages import InvalidMessage, ScalingDecision, decode, decoder
from shared.signing import KeyRing, verify

log = logging.getLogger("qas.engine")

#: A verification hook: None to accept the decision, else the reason it is refused.
Verify = Callable[[ScalingDecision], str | None]


def signed_by(ring: KeyRing) -> Verify:
    """The verify hook for decisions signed with a key of ``ring`` (shared/signing.py)."""

    def check(d: ScalingDecision) -> str | None:
        fault = verify(d, ring)
        return None if fault is None else fault[1]

    return check


@dataclass(frozen=True)
class Adopted:
    """A decision the engine acts on, and when it started to."""

    decision: ScalingDecision
    adopted_at: float
    # As ``EngineClient.current`` hands it out: the decision's age then (event time to now),
    # and whether that is beyond the client's ``stale_after_seconds``.
    age_seconds: float = 0.0
    stale: bool = False

    @property
    def latency_seconds(self) -> float:
        """Decision to adoption: event time of the decision to the engine adopting it."""
        return max(0.0, self.adopted_at - self.decision.event_time)


@dataclass
class Adopter:
    """The adoption gate. ``check`` says why not (or None); ``adopt`` makes it current."""

    host_id: str
    constants: ApplierConstants = field(default_factory=ApplierConstants)
    verify: Verify | None = None
    clock: Callable[[], float] = time.time
    current: Adopted | None = None
    refused: dict[str, int] = field(default_factory=dict)  # reason kind -> count
    last_refusal: str | None = None

    def check(self, d: ScalingDecision) -> str | None:
        if d.host_id != self.host_id:
            return f"for host {d.host_id}, not {self.host_id}"
        if self.verify is not None:
            why = self.verify(d)
            if why is not None:
                return f"unverified: {why}"
        last = None if self.current is None else self.current.decision.event_time
        return skip_reason(d, last, self.clock(), self.constants)

    def adopt(self, d: ScalingDecision) -> Adopted:
        self.current = Adopted(d, self.clock())
        return self.current

    def consider(self, d: ScalingDecision) -> Adopted | None:
        """Adopt ``d`` if it passes the gate; the refusal is counted and kept otherwise."""
        if self.current is not None and self.current.decision.decision_id == d.decision_id:
            return None  # already in force
        why = self.check(d)
        if why is None:
            return self.adopt(d)
        if d.host_id == self.host_id:
            kind = why.split(":")[0].split(" ")[0]
            self.refused[kind] = self.refused.get(kind, 0) + 1
            self.last_refusal = why
            log.debug("decision %s not adopted: %s", d.decision_id, why)
        return None


def newest_first(decisions: list[ScalingDecision]) -> list[ScalingDecision]:
    return sorted(decisions, key=lambda d: (d.event_time, d.sequence), reverse=True)


class DecisionFollower:
    """Decisions for one host from ``qas.decisions``, gated, newest wins.

    ``async for adopted in follower:`` yields each adoption; ``await follower.run(callback)``
    calls ``callback(adopted)`` (plain or async) instead. Both stop when ``stop`` is set.
    """

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        host_id: str,
        *,
        verify: Verify | None = None,
        group: str | None = None,
        clock: Callable[[], float] = time.time,
        stop: asyncio.Event | None = None,
        poll_seconds: float = 0.2,
    ) -> None:
        self.bus = bus
        self.topic = settings.topics.decisions
        self.adopter = Adopter(host_id, settings.applier, verify, clock)
        self.group = group or f"qas-engine-{host_id}-{id(self):x}"
        self.stop = stop or asyncio.Event()
        self.poll_seconds = poll_seconds
        self.undecodable = 0
        self._decoder = decoder(ScalingDecision)

    @property
    def current(self) -> Adopted | None:
        return self.adopter.current

    def _pick(self, values: list[bytes]) -> Adopted | None:
        mine: list[ScalingDecision] = []
        for value in values:
            try:
                d = decode(value, ScalingDecision, self._decoder)
            except InvalidMessage as exc:
                self.undecodable += 1
                log.warning("undecodable decision skipped: %s", exc)
                continue
            if d.host_id == self.adopter.host_id:
                mine.append(d)
        for d in newest_first(mine):
            adopted = self.adopter.consider(d)
            if adopted is not None:
                return adopted
        return None

    async def __aiter__(self) -> AsyncIterator[Adopted]:
        consumer = self.bus.consumer([self.topic], self.group)
        await consumer.start()
        try:
            while not self.stop.is_set():
                records = await consumer.getmany(self.poll_seconds)
                if not records:
                    continue
                adopted = self._pick([r.value for r in records])
                await consumer.commit(records)
                if adopted is not None:
                    yield adopted
        finally:
            await consumer.stop()

    async def run(self, callback: Callable[[Adopted], Awaitable[None] | None]) -> None:
        async for adopted in self:
            result = callback(adopted)
            if isinstance(result, Awaitable):
                await result
