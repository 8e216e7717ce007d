"""One API in both forms: the thread-backed BackgroundClient has the asyncio client's names."""

from __future__ import annotations

import inspect
import threading
import time

from core.engine import BackgroundClient, EngineClient
from core.engine.follow import Adopted
from services.bus.memory import MemoryBus
from shared.config import Settings
from shared.messages import MarketEntropy, PriceTick, decode

SHARED = ("on_adopt", "decisions", "publish_inputs", "publish_tick", "publish_ticks",
          "record_batch", "current", "healthy", "last_error", "sizer", "precision", "store")  # fmt: skip


def test_both_forms_have_the_same_names_and_publish_signatures() -> None:
    c = EngineClient(MemoryBus(), host_id="x")
    for name in SHARED:
        assert hasattr(BackgroundClient, name), f"BackgroundClient lacks {name}"
        assert hasattr(c, name), f"EngineClient lacks {name}"
    for name in ("publish_inputs", "publish_tick", "publish_ticks", "record_batch"):
        a = inspect.signature(getattr(EngineClient, name)).parameters
        b = inspect.signature(getattr(BackgroundClient, name)).parameters
        assert list(a) == list(b), name


class RecordingBus(MemoryBus):
    """The in-process bus, keeping what was published (consumers trim what they commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, value))
        await super().publish(topic, key, value)


def test_background_client_on_adopt_decisions_and_publishing_end_to_end() -> None:
    s = Settings(host_id="forms", sensor_interval_seconds=0.2)
    called: list[tuple[str, str]] = []

    def on_adopt(a: Adopted) -> None:
        called.append((a.decision.decision_id, threading.current_thread().name))

    bus = RecordingBus()
    with BackgroundClient(settings=s, host_id="forms", bus=bus, embedded_qas=True) as qas:
        assert qas.healthy and qas.last_error is None
        qas.on_adopt = on_adopt
        got: list[Adopted] = []
        deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
        for adopted in qas.decisions():
            got.append(adopted)
            if called or time.monotonic() > deadline:
                break
        assert got and called and called[0][1] == "qas-engine-client"  # on the client's thread
        assert got[0].decision.host_id == "forms"
        qas.publish_inputs(entropy=0.25)
        qas.publish_ticks([("SPX", 4700.25), ("NDX", 16000.5)], event_time=1.0)
        client = qas.client
    # close() sent what was in flight before closing
    topics = s.topics
    assert client.failures == 0
    entropy = [decode(v, MarketEntropy) for t, v in bus.sent if t == topics.entropy]
    ticks = [decode(v, PriceTick) for t, v in bus.sent if t == topics.ticks]
    assert [m.value for m in entropy] == [0.25]
    assert sorted((t.symbol, t.price) for t in ticks if t.event_time == 1.0) == [
        ("NDX", 16000.5), ("SPX", 4700.25)]  # fmt: skip
