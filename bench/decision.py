"""Decision core: decisions/s per core, decider event->decision latency, flips under noise.

Noise model (docs/decision.md): one hour of market entropy sampled at 10 Hz; the true level is
0.5 (calm) and steps to 0.85 (a volatile regime) at 20 min, back to 0.5 at 40 min; every sample
adds Gaussian noise (sigma 0.1, seeded) and is clipped to [0, 1]. Thermal 0.3, profit 0.5.
The naive policy is the obvious threshold: factor 1.3 when the sample is above 0.7, else 1.0.
A flip is a reversal of direction in the sequence of published factors.
Targets: >= 100 000 decisions/s on one core; >= 10x fewer flips than naive while each real
step is followed within one scale-down window (30 s).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time

from bench.common import pct, table
from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import DecisionConstants, Settings
from shared.decision import decide, plan
from shared.messages import MarketEntropy, PriorState, encode
from tests.support.factories import inputs_for, reference_host, snapshot

C = DecisionConstants()


def _throughput(n: int) -> list[list[object]]:
    rng = random.Random(7)
    inv = reference_host()
    inputs = [inputs_for(inv, rng.random(), rng.random(), rng.random()) for _ in range(n)]

    def naive(e: float) -> float:
        return 1.3 if e > 0.7 else 1.0

    rows = []
    t = time.perf_counter()
    for i in inputs:
        naive(i.market_entropy)
    base = n / (time.perf_counter() - t)
    rows.append(["naive threshold (baseline)", base, "1"])
    t = time.perf_counter()
    for i in inputs:
        plan(i, C)
    rate = n / (time.perf_counter() - t)
    rows.append(["plan (factor + precision)", rate, f"{rate / base:.3f}"])
    prior = PriorState()
    t = time.perf_counter()
    for k, i in enumerate(inputs):
        _, prior = decide(i, prior, host_id="h", now=1000.0 + k * 0.01, c=C)
    rate = n / (time.perf_counter() - t)
    rows.append(["decide, a stream (held or published)", rate, f"{rate / base:.3f}"])
    t = time.perf_counter()
    for i in inputs:  # worst case: no prior, so every call builds and explains a full decision
        decide(i, PriorState(), host_id="h", now=1000.0, c=C)
    rate = n / (time.perf_counter() - t)
    rows.append(["decide, every call publishes (worst case)", rate, f"{rate / base:.3f}"])
    return rows


async def _latency(n: int) -> tuple[float, float]:
    settings = Settings(decision=DecisionConstants(tolerance=0.0))
    bus = MemoryBus()
    decider = DeciderService(bus, settings, "bench")
    got: dict[float, float] = {}
    decider.on_decision = lambda d: got.setdefault(d.inputs.market_entropy, time.perf_counter())
    stop = asyncio.Event()
    task = asyncio.create_task(decider.run(stop))
    await bus.publish(
        settings.topics.hardware,
        "bench",
        encode(snapshot(reference_host(), host="bench", t=time.time())),
    )
    sent: dict[float, float] = {}
    for i in range(n):
        v = (i + 1) / (n + 1)
        sent[v] = time.perf_counter()
        await bus.publish(
            settings.topics.entropy,
            "bench",
            encode(MarketEntropy(event_time=time.time(), host_id="bench", value=v)),
        )
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.2)
    stop.set()
    await task
    lat = [got[v] - sent[v] for v in sent if v in got]
    return pct(lat, 50), pct(lat, 99)


def _library(n: int) -> str:
    """The seed's API as a trading loop calls it: one compute_quantum_scaling per cycle."""
    from core.quantum_auto_scaler import QuantumAutoScaler

    scaler = QuantumAutoScaler()
    t = time.perf_counter()
    scaler.probe.sample()
    sample = time.perf_counter() - t
    t = time.perf_counter()
    for k in range(n):
        scaler.compute_quantum_scaling(
            market_entropy=0.5, thermal_state=0.3, profit_potential=(k % 10) / 10
        )
    per_call = (time.perf_counter() - t) / n
    return (
        f"   library compute_quantum_scaling: {per_call * 1e6:.1f} us per call over {n} calls "
        f"(one full sensor sample: {sample * 1e6:.0f} us, re-read at most once per second)"
    )


def _flips(sequence: list[float]) -> int:
    flips, direction = 0, 0
    for a, b in itertools.pairwise(sequence):
        d = (b > a) - (b < a)
        if d and direction and d != direction:
            flips += 1
        direction = d or direction
    return flips


def _noise_run() -> list[list[object]]:
    rng = random.Random(2024)
    inv = reference_host()
    hz, seconds = 10, 3600
    up_at, down_at = 1200.0, 2400.0
    naive_pub: list[tuple[float, float]] = []
    ours_pub: list[tuple[float, float]] = []
    prior = PriorState()
    last_naive = None
    for k in range(hz * seconds):
        now = k / hz
        level = 0.85 if up_at <= now < down_at else 0.5
        e = min(1.0, max(0.0, rng.gauss(level, 0.1)))
        f = 1.3 if e > 0.7 else 1.0
        if f != last_naive:
            naive_pub.append((now, f))
            last_naive = f
        d, prior = decide(inputs_for(inv, e, 0.3, 0.5), prior, host_id="h", now=now, c=C)
        if d is not None:
            ours_pub.append((now, d.scaling_factor))
    high_target = plan(inputs_for(inv, 0.85, 0.3, 0.5), C).scaling_factor

    def follow(after: float, pred) -> float:  # type: ignore[no-untyped-def]
        return next((t - after for t, f in ours_pub if t >= after and pred(f)), float("inf"))

    up = follow(up_at, lambda f: f >= high_target - 0.05)
    down = follow(down_at, lambda f: f <= 1.05)
    n_flips, o_flips = _flips([f for _, f in naive_pub]), _flips([f for _, f in ours_pub])
    return [
        ["naive threshold (baseline)", len(naive_pub), n_flips, "-", "-", "1"],
        ["QAS stabiliser", len(ours_pub), o_flips, f"{up:.1f}", f"{down:.1f}",
         f"{n_flips / max(1, o_flips):.0f}x fewer flips"],
    ]  # fmt: skip


def main(quick: bool = False) -> None:
    print(
        table(
            ["path", "decisions/s (1 core)", "vs naive"], _throughput(20_000 if quick else 100_000)
        )
    )
    print(_library(2_000 if quick else 20_000))
    p50, p99 = asyncio.run(_latency(200 if quick else 1000))
    print(
        f"   decider service, embedded bus: event -> decision p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"
    )
    print(table(["policy (1 h at 10 Hz, sigma 0.1)", "decisions/h", "flips/h", "up followed s",
                 "down followed s", "ratio"], _noise_run()))  # fmt: skip
