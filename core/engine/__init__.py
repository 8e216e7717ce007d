"""The engine client library: follow QAS decisions, hold the engine's arrays at the decided
precision, size its batches, and report feedback on ``qas.feedback``.

    from core.engine import connect
    async with connect(latency_objective_ms=25) as qas:
        async for adopted in qas.decisions(): ...

See ``core.engine.client`` for the plain-loop form (``BackgroundClient``).
"""

from core.engine.client import BackgroundClient, EngineClient, connect
from core.engine.compute import BatchSizer, PrecisionContext
from core.engine.errors import ClientClosed, ClientFailed, ClientOptionError, StoreValueError
from core.engine.feedback import FeedbackReporter, resident_bytes
from core.engine.follow import Adopted, Adopter, DecisionFollower, Verify, signed_by
from core.engine.store import EngineStore

__all__ = [
    "Adopted",
    "Adopter",
    "BackgroundClient",
    "BatchSizer",
    "ClientClosed",
    "ClientFailed",
    "ClientOptionError",
    "DecisionFollower",
    "EngineClient",
    "EngineStore",
    "FeedbackReporter",
    "PrecisionContext",
    "StoreValueError",
    "Verify",
    "connect",
    "resident_bytes",
    "signed_by",
]
