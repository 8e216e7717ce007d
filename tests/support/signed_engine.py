"""An engine that holds only the decider's public key, on any bus: it adopts the genuine signed
decision and refuses every forgery a host holding that public key could make (shared by the
embedded-bus test in tests/core and the real-broker one in tests/integration)."""

from __future__ import annotations

import asyncio
import time

import msgspec

from core.engine import connect
from services.bus.base import Bus
from shared.config import Settings
from shared.decision import decide
from shared.messages import PriorState, ScalingDecision, encode
from shared.signing import HmacKey, KeyRing, SigningKey, VerifyKey, sign
from tests.support.factories import inputs_for, reference_host


async def public_key_engine_scenario(bus: Bus, s: Settings, host: str, timeout: float) -> None:
    private = KeyRing((SigningKey.generate("decider-1"),))  # the decider's, never the engine's
    public = private.public()
    key = public.keys[0]
    assert isinstance(key, VerifyKey) and not public.has_private
    now = time.time()
    d, _ = decide(inputs_for(reference_host(), 0.5, 0.2, 0.5), PriorState(), host_id=host,
                  now=now, c=s.decision)  # fmt: skip
    assert d is not None
    genuine = sign(d, private.signer)

    def newer(tag: str, dt: float) -> ScalingDecision:  # what an attacker wants enacted
        return msgspec.structs.replace(d, decision_id=f"{tag}-1", batch_size=1,
                                       event_time=now + dt, key_id=None, signature=None)  # fmt: skip

    raw = key.public_bytes
    forgeries = [
        sign(newer("seeded", 0.1), SigningKey("decider-1", raw)),  # key derived from the public
        sign(newer("maced", 0.2), HmacKey("decider-1", raw)),  # MACed with the public bytes
        msgspec.structs.replace(genuine, batch_size=1, event_time=now + 0.3),  # altered
        msgspec.structs.replace(newer("unsigned", 0.4)),
    ]
    async with connect(bus=bus, settings=s, host_id=host, embedded_qas=False,
                       keys=public) as client:  # fmt: skip
        await bus.publish(s.topics.decisions, host, encode(genuine))
        for f in forgeries:
            await bus.publish(s.topics.decisions, host, encode(f))
        refused = client.follower.adopter.refused
        async with asyncio.timeout(timeout):
            while client.current is None or refused.get("unverified", 0) < len(forgeries):
                await asyncio.sleep(0.05)
        adopted = client.current
        assert adopted is not None and adopted.decision.decision_id == genuine.decision_id
        assert adopted.decision.batch_size == genuine.batch_size != 1
        assert refused == {"unverified": len(forgeries)}, refused
