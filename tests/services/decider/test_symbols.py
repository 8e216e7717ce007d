"""The decider's price estimators: one per (host, symbol), capped, least recently seen evicted."""

from __future__ import annotations

from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import DecisionConstants, Settings
from shared.messages import PriceTick


async def test_tracked_symbols_are_capped_and_the_least_recently_seen_is_evicted() -> None:
    s = Settings(decision=DecisionConstants(max_tracked_symbols=3))
    svc = DeciderService(MemoryBus(), s, "me", clock=lambda: 1.0)

    async def tick(symbol: str, price: float = 100.0) -> None:
        await svc.on_tick(PriceTick(event_time=1.0, host_id="h", symbol=symbol, price=price))

    for sym in ("A", "B", "C"):
        await tick(sym)
    await tick("A", 101.0)  # A is now the most recently seen; B the least
    await tick("D")
    assert list(svc._estimators) == [("h", "C"), ("h", "A"), ("h", "D")]
    assert svc.stats["symbols_evicted"] == 1
    assert svc._estimators[("h", "A")]._last == 101.0  # a kept estimator keeps its state
    for i in range(100):
        await tick(f"X{i}")
    assert len(svc._estimators) == 3 and svc.stats["symbols_evicted"] == 101
