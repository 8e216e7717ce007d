"""A decision the broker will not take within the applier's age limit is given up, not retried
for ever: the loop goes on, and the change is decided again once the broker takes writes."""

from __future__ import annotations

import asyncio

from services.bus.base import BusError
from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import ApplierConstants, DecisionConstants, Settings
from shared.messages import MarketEntropy, ScalingDecision, decode
from tests.support.factories import reference_host, snapshot

S = Settings(decision=DecisionConstants(max_jitter_seconds=0.0, smoothing_seconds=0.0),
             applier=ApplierConstants(max_decision_age_seconds=0.3))  # fmt: skip
HOST = "h1"


class RefusingBus(MemoryBus):
    """Refuses every write to qas.decisions while ``refusing`` is set (as Tansu did to one
    partition for 90 s after a restart)."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = True
        self.refused = 0

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        if self.refusing and topic == S.topics.decisions:
            self.refused += 1
            raise BusError("refused", retriable=True)
        await super().publish(topic, key, value)


async def test_a_decision_the_broker_refuses_is_given_up_and_decided_again() -> None:
    bus, now = RefusingBus(), [1000.0]
    d = DeciderService(bus, S, "me", clock=lambda: now[0])
    d._stop = asyncio.Event()
    made: list[int] = []  # sequence numbers, as made and as published (what --json prints)
    published: list[int] = []
    d.on_decision = lambda x: made.append(x.sequence)
    d.on_published = lambda x: published.append(x.sequence)
    bus.refusing = False
    await d.on_hardware(snapshot(reference_host(), host=HOST, t=now[0]))
    await d.on_handled()
    before = [decode(r.value, ScalingDecision) for r in await bus.read_back([S.topics.decisions], 1.0)]
    bus.refusing = True

    now[0] += 1.0
    await d.on_entropy(MarketEntropy(event_time=now[0], host_id=HOST, value=1.0))
    async with asyncio.timeout(5):  # retried for the age limit (0.3 s), then given up
        await d.on_handled()
    assert bus.refused >= 2 and d.stats["decisions_unpublished"] == 1
    assert d.hosts[HOST].prior.scaling_factor == before[-1].scaling_factor  # what was published

    bus.refusing = False
    now[0] += 1.0
    await d.on_handled()  # no new input: the host was left to decide again
    after = [decode(r.value, ScalingDecision) for r in await bus.read_back([S.topics.decisions], 1.0)]
    assert len(after) == len(before) + 1
    assert after[-1].scaling_factor > before[-1].scaling_factor
    assert after[-1].sequence > before[-1].sequence + 1  # the given-up one kept its number
    assert published == [x.sequence for x in after]  # printed only once on the bus
    assert len(made) == len(published) + 1  # the given-up one was handed on, not printed
