from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.support.broker import TansuBroker

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    """A real Kafka-protocol broker on loopback. Fails loudly (never skips) if it cannot start."""
    b = TansuBroker().start()
    try:
        yield b
    finally:
        b.stop()
