"""An engine holding only the decider's public key (embedded bus; the real broker is in
tests/integration/test_security.py)."""

from __future__ import annotations

import pytest

from core.engine import connect
from services.bus.memory import MemoryBus
from shared.config import DecisionConstants, Settings
from shared.signing import KeyFileError, KeyRing
from tests.support.signed_engine import public_key_engine_scenario

S = Settings(decision=DecisionConstants(max_jitter_seconds=0.0))


async def test_an_engine_with_only_the_public_key_adopts_genuine_and_refuses_forged() -> None:
    bus = MemoryBus()
    await bus.start()
    try:
        await public_key_engine_scenario(bus, S, "desk-pub", timeout=10.0)
    finally:
        await bus.stop()


async def test_the_embedded_decider_cannot_run_on_public_keys_alone() -> None:
    public = KeyRing.ephemeral().public()
    with pytest.raises(KeyFileError, match="public key: signing needs the private key file"):
        async with connect(keys=public):
            pass
