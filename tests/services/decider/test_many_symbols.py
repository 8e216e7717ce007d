"""A host trading many symbols: its market entropy is the aggregate of its symbols' values,
the same whatever order a batch's ticks arrive in (in-memory bus)."""

from __future__ import annotations

import math
import random

import msgspec

from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import Settings
from shared.market import WINDOW
from shared.market_aggregate import SymbolValue, aggregate
from shared.messages import PriceTick, ScalingDecision
from tests.support.factories import reference_host, snapshot

S = Settings()
N = WINDOW + 6


def series(symbol: str, amplitude: float) -> list[PriceTick]:
    """One symbol's ticks: a sine wobble around 100 with the given relative amplitude."""
    phase = sum(map(ord, symbol))
    return [PriceTick(event_time=1000.0 + 0.01 * i, host_id="h1", symbol=symbol,
                      price=100.0 * (1.0 + amplitude * math.sin(i * 1.7 + phase)))
            for i in range(N)]  # fmt: skip


UNIVERSE = {"CALM": 0.0005, "MID": 0.01, "WILD": 0.08, "S1": 0.002, "S2": 0.004, "S3": 0.03}


def interleaved(seed: int) -> list[PriceTick]:
    """All symbols' ticks in one batch, interleaved at random; each symbol's own order kept."""
    queues = {s: series(s, a) for s, a in UNIVERSE.items()}
    rnd, out = random.Random(seed), []
    while queues:
        s = rnd.choice(sorted(queues))
        out.append(queues[s].pop(0))
        if not queues[s]:
            del queues[s]
    return out


async def decide_batch(ticks: list[PriceTick]) -> tuple[DeciderService, list[ScalingDecision]]:
    svc = DeciderService(MemoryBus(), S, "me", clock=lambda: 1000.5)
    made: list[ScalingDecision] = []
    svc.on_decision = made.append
    await svc.on_hardware(snapshot(reference_host(), host="h1"))
    for tick in ticks:
        await svc.on_tick(tick)
    await svc.on_handled()  # the end of the batch: one decision from everything it brought
    return svc, made


async def test_the_order_of_a_batch_does_not_change_the_host_entropy_or_decision() -> None:
    a, made_a = await decide_batch(interleaved(1))
    b, made_b = await decide_batch(interleaved(2))
    assert interleaved(1) != interleaved(2)
    # The last tick differs between the orders, so a last-writer-wins host value would too.
    assert interleaved(1)[-1].symbol != interleaved(2)[-1].symbol
    ea, eb = a.hosts["h1"].entropy, b.hosts["h1"].entropy
    assert ea is not None and ea == eb
    # In event-time order the decider keeps its symbols ranked as they change (no sort per
    # decision); out of order it aggregates afresh: both give the same host entropy.
    c, made_c = await decide_batch(sorted(interleaved(1), key=lambda t: t.event_time))
    assert c.hosts["h1"].ticks_in_order and not a.hosts["h1"].ticks_in_order
    assert c.hosts["h1"].entropy == ea and made_c[0].inputs == made_a[0].inputs
    assert a.hosts["h1"].profit == b.hosts["h1"].profit
    assert len(made_a) == len(made_b) == 1
    assert made_a[0].inputs == made_b[0].inputs and made_a[0].reasons == made_b[0].reasons
    # And it is the defined aggregate of the per-symbol values, named in the reasons.
    held = a.hosts["h1"].symbols
    assert sorted(held) == sorted(UNIVERSE)
    agg = aggregate({s: SymbolValue(v.entropy, v.event_time) for s, v in held.items()},
                    now=max(v.event_time for v in held.values()),
                    staleness_seconds=S.decision.staleness_seconds)  # fmt: skip
    assert agg is not None and ea.value == agg.value and agg.rule in ("top-k", "median")
    assert any(r.startswith(f"market entropy {agg.value:.2f}: ") for r in made_a[0].reasons)
    highest = min(held.items(), key=lambda kv: (-kv[1].entropy, kv[0]))  # leads the reason
    assert agg.top[0] == (highest[0], highest[1].entropy)


async def test_one_symbol_gives_that_symbols_own_values() -> None:
    svc, _ = await decide_batch(series("SPX", 0.01))
    one = svc.hosts["h1"].symbols["SPX"]
    entropy, profit = svc.hosts["h1"].entropy, svc.hosts["h1"].profit
    assert entropy is not None and profit is not None
    assert (entropy.value, entropy.note, entropy.confidence) == (one.entropy, one.note,
                                                                 one.confidence)  # fmt: skip
    assert profit.value == one.profit and entropy.event_time == one.event_time


async def test_an_evicted_symbol_leaves_the_host_aggregate() -> None:
    settings = msgspec.structs.replace(S, max_tracked_symbols=2)
    svc = DeciderService(MemoryBus(), settings, "me", clock=lambda: 1000.5)
    await svc.on_hardware(snapshot(reference_host(), host="h1"))
    for symbol in ("A", "B"):
        for tick in series(symbol, 0.01):
            await svc.on_tick(tick)
    assert sorted(svc.hosts["h1"].symbols) == ["A", "B"]
    await svc.on_tick(PriceTick(event_time=1001.0, host_id="h1", symbol="C", price=100.0))
    assert sorted(svc.hosts["h1"].symbols) == ["B"]  # A's estimator evicted: its values too
    assert svc.stats["symbols_evicted"] == 1
