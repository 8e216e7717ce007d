"""Pipeline: market events/s and latency, embedded and Kafka, beside a raw echo on the same transport.

Three paths on each transport, measured in the same run: ``echo`` (a raw consumer republishing
the same bytes, read by a client: two hops, the least any round trip through QAS can take),
``decision`` (market event published -> decision, signed with Ed25519, read by a client) and
``applied`` (market event published -> apply result read by a client, decider and applier in one
process as `qas run` runs them: the decision reaches the applier in process, which verifies it).
"vs echo" is events/s over the echo's. On the embedded bus the same two paths also run signed with
HMAC-SHA256 (the previous release's scheme, ``decision-hmac`` and ``applied-hmac``): the cost of
Ed25519 is their events/s side by side.
The reading client decodes only the field it times by, on every path.
Kafka is measured at more than one fetch_max_wait_ms. Every measurement uses fresh topics, so no
reader sees an earlier measurement's backlog. Targets (issue 17): embedded decision events/s at
least 0.8 of the echo's; Kafka applied p99 at most 1.5 x the echo's p99.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from app.runtime import InProcessApplier
from bench.common import pct, table
from services.applier.actuators import PoolEnactor
from services.applier.pool import TieredPool
from services.bus.base import Bus
from services.bus.kafka import KafkaBus
from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import DecisionConstants, Settings, Topics
from shared.messages import MarketEntropy, ScalingDecision, encode
from shared.signing import HmacKey, KeyRing
from tests.support.factories import reference_host, snapshot

HOST = "bench-host"
_RUN = itertools.count()
Service = Callable[[Bus, asyncio.Event, Settings], Awaitable[None]]


def _settings() -> Settings:
    p = f"bench{time.monotonic_ns()}-{next(_RUN)}"
    topics = Topics(**{name: f"{p}.{name}" for name in Topics.__struct_fields__})
    # tolerance 0: every market event makes a decision, so each one can be timed
    return Settings(
        topics=topics, decision=DecisionConstants(tolerance=0.0, max_jitter_seconds=0.0)
    )


async def _echo(bus: Bus, stop: asyncio.Event, s: Settings) -> None:
    """The baseline: consume market events and republish the bytes unchanged."""
    consumer = bus.consumer([s.topics.entropy], "bench-echo")
    await consumer.start()
    try:
        while not stop.is_set():
            records = await consumer.getmany(timeout=0.05)
            for r in records:
                await bus.publish(s.topics.decisions, HOST, r.value)
            if records:
                await consumer.commit(records)
    finally:
        await consumer.stop()


def _ring(scheme: str) -> KeyRing:
    if scheme == "hmac":
        return KeyRing((HmacKey("bench-hmac", bytes(range(32))),))
    return KeyRing.ephemeral()


def _qas(scheme: str) -> Service:
    async def run(bus: Bus, stop: asyncio.Event, s: Settings) -> None:
        await DeciderService(bus, s, HOST, group="bench-decider", signer=_ring(scheme)).run(stop)

    return run


DECIDED: dict[str, float] = {}  # decision id -> the market entropy it was made from


def _qas_applied(scheme: str) -> Service:
    async def run(bus: Bus, stop: asyncio.Event, s: Settings) -> None:
        await _applied(bus, stop, s, _ring(scheme))

    return run


async def _applied(bus: Bus, stop: asyncio.Event, s: Settings, keys: KeyRing) -> None:
    """Decider and applier in one process, wired as `qas run` wires them (in-process handoff,
    signed with an ephemeral key and verified)."""
    decider = DeciderService(bus, s, HOST, group="bench-decider", signer=keys)
    pool = TieredPool(budget_bytes=64 << 20)
    applier = InProcessApplier(bus, s, HOST, group="bench-applier", pool=pool,
                               enactors=[PoolEnactor(pool)], verifier=keys)  # fmt: skip

    def decided(d: ScalingDecision) -> None:
        DECIDED[d.decision_id] = d.inputs.market_entropy
        applier.hand(d)

    decider.on_decision = decided
    async with asyncio.TaskGroup() as tg:
        tg.create_task(decider.run(stop))
        tg.create_task(applier.run(stop))


class _Value(msgspec.Struct):
    value: float


class _Inputs(msgspec.Struct):
    market_entropy: float


class _Decision(msgspec.Struct):
    inputs: _Inputs


class _Applied(msgspec.Struct):
    decision_id: str


# The reader is the benchmark's client, not QAS: on every path it decodes only the field it
# times by, so a bigger message on one path does not bill its decode to that path.
_ECHO, _DECISION, _APPLIED = (msgspec.json.Decoder(k) for k in (_Value, _Decision, _Applied))


def _value(path: str, data: bytes) -> float | None:
    """The market entropy a record on the read topic answers."""
    if path == "echo":
        return _ECHO.decode(data).value
    if path.startswith("decision"):
        return _DECISION.decode(data).inputs.market_entropy
    return DECIDED.get(_APPLIED.decode(data).decision_id)


async def _measure(
    make: Callable[[Settings], Bus], service: Service, n: int, rate: float | None, path: str
) -> tuple[float, list[float]]:
    """Publish n events (paced at `rate`/s, or as fast as possible): (events/s, latencies)."""
    s = _settings()
    t = s.topics
    bus = make(s)
    await bus.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service(bus, stop, s))
    is_qas = path != "echo"
    reader = bus.consumer([t.applied if path.startswith("applied") else t.decisions],
                          "bench-reader")  # fmt: skip
    await reader.start()
    try:
        if is_qas:
            await bus.publish(
                t.hardware, HOST, encode(snapshot(reference_host(), host=HOST, t=time.time()))
            )
        # warm-up: both consumer groups joined and flowing
        await bus.publish(
            t.entropy, HOST, encode(MarketEntropy(event_time=time.time(), host_id=HOST, value=0.0))
        )
        async with asyncio.timeout(60):
            while not await reader.getmany(timeout=0.2):
                pass
        sent_at: dict[float, float] = {}
        latencies: list[float] = []

        async def read() -> None:
            # Values rise event by event. The decider decides once per batch, from the newest
            # event in it: a decision on value x answers every event up to x (an echo answers
            # exactly one). Throughput is events answered; latency is each event's until then.
            while len(latencies) < n:
                for r in await reader.getmany(timeout=0.2):
                    value = _value(path, r.value)
                    if value is None:
                        continue
                    now = time.perf_counter()
                    while sent_at and next(iter(sent_at)) <= value:
                        latencies.append(now - sent_at.pop(next(iter(sent_at))))

        reading = asyncio.create_task(read())
        start = time.perf_counter()
        for i in range(n):
            value = (i + 1) / (n + 1)
            sent_at[value] = time.perf_counter()
            msg = MarketEntropy(event_time=time.time(), host_id=HOST, value=value)
            await bus.publish(t.entropy, HOST, encode(msg))
            if rate:
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        async with asyncio.timeout(120):
            await reading
        return n / (time.perf_counter() - start), latencies
    finally:
        stop.set()
        await task
        await reader.stop()
        await bus.stop()


PATHS: dict[str, Service] = {"echo": _echo, "decision": _qas("ed25519"),
                             "applied": _qas_applied("ed25519")}  # fmt: skip
HMAC_PATHS: dict[str, Service] = {"decision-hmac": _qas("hmac"), "applied-hmac": _qas_applied("hmac")}


async def _transport(
    name: str, make: Callable[[Settings], Bus], n: int, rate: float, fetch_ms: int | None
) -> list[dict[str, Any]]:
    rows = []
    paths = PATHS if name != "embedded" else {**PATHS, **HMAC_PATHS}
    for path, svc in paths.items():
        eps, _ = await _measure(make, svc, n, None, path)
        _, lat = await _measure(make, svc, n // 2, rate, path)
        rows.append({"transport": name, "fetch_max_wait_ms": fetch_ms, "path": path,
                     "events_per_s": eps, "p50_ms": pct(lat, 50) * 1e3,
                     "p99_ms": pct(lat, 99) * 1e3})  # fmt: skip
    return rows


def _verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    by = {(r["transport"], r["fetch_max_wait_ms"], r["path"]): r for r in rows}
    for (transport, fetch_ms, path), r in by.items():
        echo = by[(transport, fetch_ms, "echo")]
        if transport == "embedded" and path == "decision":
            ratio = r["events_per_s"] / echo["events_per_s"]
            out.append({"target": "embedded decision events/s >= 0.8 x echo", "transport": transport,
                        "ratio": ratio, "met": ratio >= 0.8})  # fmt: skip
        hmac = by.get((transport, fetch_ms, f"{path}-hmac"))
        if hmac is not None:
            ratio = r["events_per_s"] / hmac["events_per_s"]
            out.append({"measured": f"embedded {path} events/s, Ed25519 / HMAC",
                        "transport": transport, "ratio": ratio})  # fmt: skip
        if transport == "kafka" and path == "applied":
            ratio = r["p99_ms"] / echo["p99_ms"]
            out.append({"target": "kafka applied p99 <= 1.5 x echo p99", "transport": transport,
                        "fetch_max_wait_ms": fetch_ms, "ratio": ratio, "met": ratio <= 1.5})  # fmt: skip
    return out


def main(
    quick: bool = False, json_out: bool = False, fetch_ms: tuple[int, ...] = (100, 10)
) -> None:
    from tests.support.broker import TansuBroker

    n = 400 if quick else 2000
    rate = 200.0
    rows = asyncio.run(_transport("embedded", lambda s: MemoryBus(), n, rate, None))
    broker = TansuBroker().start()
    try:
        for wait in fetch_ms:

            def kafka(s: Settings, wait: int = wait) -> Bus:
                return KafkaBus(broker.bootstrap, topics=s.topics.all(), fetch_max_wait=wait / 1e3)

            rows += asyncio.run(_transport("kafka", kafka, n, rate, wait))
    finally:
        broker.stop()
    verdicts = _verdicts(rows)
    if json_out:
        for r in rows + verdicts:
            print(json.dumps(r), flush=True)
        return
    print(
        f"   events/s: {n} events as fast as possible; latency: {n // 2} events paced at {rate:g}/s;"
        " kafka = Tansu on loopback"
    )
    print(table(["transport", "fetch wait ms", "path", "events/s", "p50 ms", "p99 ms",
                 "events/s vs echo"],
                [[r["transport"], r["fetch_max_wait_ms"] or "-", r["path"], r["events_per_s"],
                  r["p50_ms"], r["p99_ms"],
                  f"{r['events_per_s'] / next(e['events_per_s'] for e in rows if e['transport'] == r['transport'] and e['fetch_max_wait_ms'] == r['fetch_max_wait_ms'] and e['path'] == 'echo'):.2f}"]
                 for r in rows]))  # fmt: skip
    for v in verdicts:
        if "measured" in v:
            print(f"   {v['measured']}: {v['ratio']:.2f} (the cost of Ed25519; no target)")
            continue
        extra = f" at fetch wait {v['fetch_max_wait_ms']} ms" if "fetch_max_wait_ms" in v else ""
        print(f"   {v['target']}{extra}: {v['ratio']:.2f}: {'met' if v['met'] else 'NOT met'}")
