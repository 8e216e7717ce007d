"""A fleet of `qas decider` processes in one group shares simulated hosts; one is SIGKILLed.

`python -m bench fleet [--json]` (not in CI; tests/faults/test_fleet.py runs a small one). A
Tansu broker on loopback; 3 deciders (`python -m app.cli decider`, one consumer group, the
topics made with 6 partitions); 1 000 simulated hosts, each with a hardware snapshot on the
compacted topic and, every ``period`` seconds, its market signals and a sensor reading whose
thermal state alternates, so that every round asks for a new decision (a hot reading cuts the
factor at once, a cooler one raises it a bounded step). The decisions topic is
read without a group. After every host has had a decision, one decider is SIGKILLed: its
partitions move to the others when its session times out, and they rebuild those hosts' state
from the bus before deciding for them.

Rows: hosts, deciders, max_gap_seconds (the longest any host waited, from its first round
after the kill, for a decision on that round or a newer one), median_wait_seconds,
longest_silence_seconds (the longest stretch without any decision for a host from the kill on:
a host whose newest inputs ask for the decision it already has gets none, rightly), lost_hosts
(hosts never decided on after the kill), decisions_per_s, and whether the target holds:
max_gap_seconds at most the session timeout plus 5 s, with 0 lost hosts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import table
from services.bus.kafka import KafkaBus
from services.observer.probe import HardwareProbe
from shared.config import Settings
from shared.messages import MarketEntropy, ProfitPotential, SensorReading, encode
from tests.support.broker import TansuBroker

ROOT = Path(__file__).resolve().parents[1]
GROUP = "qas-decider"


class _Inputs(msgspec.Struct):
    thermal_state: float


class _Seen(msgspec.Struct):
    """The fields of a decision this bench reads (the rest is skipped by the decoder)."""

    host_id: str
    inputs: _Inputs


# Thermal states of the rounds, (hot, cool) in turn, with market entropy and profit at 1.0.
# Before the kill the decisions are 1.0 at 64 bits (0.95: thermal safety) and 1.5 then the
# hardware's cap at 80 bits (0.0). From the kill on the hosts move to two hot states whose
# thermal-safety factors, 1.33 (0.85) and 1.67 (0.8), differ from all of those and from each
# other, hot ones cutting at once: whatever round of its backlog a decider sees last, a host's
# first round after the kill asks for a decision, and a decision on one of these states shows
# the decider has seen that round or a newer one.
BEFORE = (0.95, 0.0)
AFTER = (0.85, 0.8)


@dataclass
class FleetRun:
    hosts: int = 1000
    deciders: int = 3
    partitions: int = 6
    period: float = 3.0  # seconds between one host's rounds
    seconds: float = 60.0  # after the warm-up
    session_timeout: float = 6.0
    warmup_limit: float = 90.0  # every host must have a decision by then
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qas-fleet-")))


@dataclass
class Decider:
    index: int
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def decisions(self) -> list[dict[str, Any]]:
        out = []
        for line in self.out.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut by SIGKILL
                continue
            if rec.get("type") == "decision":
                out.append(rec)
        return out


def _start_decider(i: int, run: FleetRun, bootstrap: str) -> Decider:
    out, err = run.log_dir / f"decider-{i}.out", run.log_dir / f"decider-{i}.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "decider", "--bootstrap-servers", bootstrap,
             "--host-id", f"fleet-decider-{i}", "--insecure-unsigned", "--no-metrics", "--json",
             "--session-timeout", str(run.session_timeout), "--partitions", str(run.partitions),
             "--connect-timeout", "30"],
            stdout=o, stderr=e, cwd=ROOT,
        )  # fmt: skip
    return Decider(i, proc, out, err)


class Watch:
    """Every decision on the decisions topic, per host, with the time it was read; and when
    each host first got a decision on an after-the-kill state."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.after: dict[str, float] = {}
        self.count = 0
        self.decoder = msgspec.json.Decoder(_Seen)

    async def follow(self, bootstrap: str, topic: str, stop: asyncio.Event) -> None:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=10)  # fmt: skip
        await c.start()
        try:
            await c.topics()
            parts = c.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            while not stop.is_set():
                batch = await c.getmany(timeout_ms=200, max_records=5000)
                now = time.monotonic()
                for msgs in batch.values():
                    for m in msgs:
                        try:
                            seen = self.decoder.decode(m.value)
                        except msgspec.DecodeError:
                            continue
                        self.times.setdefault(seen.host_id, []).append(now)
                        self.count += 1
                        if seen.inputs.thermal_state in AFTER:
                            self.after.setdefault(seen.host_id, now)
        finally:
            await asyncio.wait_for(c.stop(), 5)


class Feed:
    """Each host's round once every ``period``, the hosts spread across it; ``switch()`` moves
    every host to the after-the-kill states and notes when each host's first such round left."""

    def __init__(self) -> None:
        self.states = BEFORE
        self.switched: dict[str, float] = {}

    def switch(self) -> None:
        self.states = AFTER


async def _feed(producer: AIOKafkaProducer, s: Settings, hosts: list[str], run: FleetRun,
                feed: Feed, stop: asyncio.Event) -> None:  # fmt: skip
    t = s.topics
    step = run.period / len(hosts)
    rounds = 0
    started = time.monotonic()
    while not stop.is_set():
        for i, h in enumerate(hosts):
            due = started + rounds * run.period + i * step
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set():
                return
            now = time.time()
            states = feed.states
            key = h.encode()
            reading = SensorReading(event_time=now, host_id=h, cpu_utilization_ratio=0.5,
                                    memory_available_bytes=8 << 30,
                                    thermal_state=states[(rounds + i) % 2])  # fmt: skip
            await producer.send(t.sensors, encode(reading), key=key)
            await producer.send(t.entropy, encode(MarketEntropy(event_time=now, host_id=h,
                                                                value=1.0)), key=key)  # fmt: skip
            await producer.send(t.profit, encode(ProfitPotential(event_time=now, host_id=h,
                                                                 value=1.0)), key=key)  # fmt: skip
            if states is AFTER:
                feed.switched.setdefault(h, time.monotonic())
        rounds += 1


def _gaps(times: list[float], since: float, until: float) -> float:
    """The longest stretch in [since, until] without a decision."""
    marks = [since, *(x for x in times if since < x < until), until]
    return max(b - a for a, b in itertools.pairwise(marks))


async def fleet(run: FleetRun, progress: bool = True) -> dict[str, Any]:
    s = Settings()
    t = s.topics
    broker = TansuBroker().start()
    deciders: list[Decider] = []
    stop_feed, stop_watch = asyncio.Event(), asyncio.Event()
    hosts = [f"fleet-host-{i:05d}" for i in range(run.hosts)]

    def say(text: str) -> None:
        if progress:
            print(f"   fleet: {text}", file=sys.stderr, flush=True)

    try:
        # Topics made as `qas` makes them, with this many partitions.
        bus = KafkaBus(broker.bootstrap, topics=t.all(), compacted_topics=t.compacted(),
                       partitions=run.partitions)  # fmt: skip
        await bus.start()
        await bus.stop()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, acks=1)
        await producer.start()
        base = HardwareProbe(s, "fleet").snapshot()
        for h in hosts:
            snap = msgspec.structs.replace(base, host_id=h, event_time=time.time())
            await producer.send(t.hardware, encode(snap), key=h.encode())
        await producer.flush()
        say(f"{run.hosts} hardware snapshots published; starting {run.deciders} deciders")
        for i in range(run.deciders):
            deciders.append(_start_decider(i, run, broker.bootstrap))
        watch, feed = Watch(), Feed()
        tasks = [
            asyncio.create_task(watch.follow(broker.bootstrap, t.decisions, stop_watch)),
            asyncio.create_task(_feed(producer, s, hosts, run, feed, stop_feed)),
        ]
        t0 = time.monotonic()
        while len(watch.times) < run.hosts:
            if time.monotonic() - t0 > run.warmup_limit:
                raise RuntimeError(f"only {len(watch.times)} of {run.hosts} hosts had a decision "
                                   f"after {run.warmup_limit:g} s; logs in {run.log_dir}")  # fmt: skip
            for d in deciders:
                if d.proc.poll() is not None:
                    raise RuntimeError(f"decider {d.index} exited ({d.proc.returncode}); see {d.err}")
            await asyncio.sleep(0.5)
        warm = time.monotonic()
        say(f"every host decided after {warm - t0:.1f} s; running {run.seconds:g} s")
        counted_from = watch.count
        await asyncio.sleep(run.seconds * 0.3)
        victim = deciders[0]
        shares = [len({d["host_id"] for d in x.decisions()}) for x in deciders]
        owned = {d["host_id"] for d in victim.decisions()}
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        killed = time.monotonic()
        feed.switch()
        say(f"SIGKILLed decider 0 (it had decided for {len(owned)} hosts)")
        await asyncio.sleep(run.seconds * 0.7)
        stop_feed.set()
        end = time.monotonic()
        await asyncio.sleep(1.0)  # decisions already on their way
        stop_watch.set()
        await asyncio.gather(*tasks)
        await producer.stop()
        # A host waits from its first round after the kill to the first decision on it (or on
        # a newer round); a host with none by the end is lost.
        waits = {h: watch.after[h] - feed.switched[h] for h in hosts
                 if h in watch.after and h in feed.switched}  # fmt: skip
        lost = sorted(set(hosts) - set(waits))
        max_gap = max(waits.values(), default=float("inf"))
        moved = sum(1 for h in owned if h in waits)
        return {
            "hosts": run.hosts,
            "deciders": run.deciders,
            "partitions": run.partitions,
            "period_seconds": run.period,
            "session_timeout_seconds": run.session_timeout,
            "max_gap_seconds": round(max_gap, 2),
            "median_wait_seconds": round(statistics.median(waits.values()), 2) if waits else None,
            "longest_silence_seconds": round(
                max(_gaps(watch.times.get(h, []), killed, end) for h in hosts), 2
            ),
            "lost_hosts": len(lost),
            "hosts_per_decider": shares,  # hosts each had decided for before the kill
            "killed_decider_hosts": len(owned),
            "moved_hosts": moved,
            "decisions_per_s": round((watch.count - counted_from) / (end - warm), 1),
            "target_met": max_gap <= run.session_timeout + 5.0 and not lost,
            "lost_examples": lost[:5],
        }
    finally:
        for d in deciders:
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
        for d in deciders:
            try:
                d.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                d.proc.kill()
        broker.stop()


def main(quick: bool = False, json_out: bool = False) -> None:
    run = FleetRun(hosts=200, seconds=40.0) if quick else FleetRun()
    row = asyncio.run(fleet(run, progress=not json_out))
    if json_out:
        print(json.dumps(row), flush=True)
        return
    shown = {k: v for k, v in row.items() if k not in ("lost_examples", "hosts_per_decider")}
    print(table(list(shown), [list(shown.values())]))
    verdict = "met" if row["target_met"] else "NOT met"
    print(f"   target: longest wait {row['max_gap_seconds']} s <= session timeout "
          f"{row['session_timeout_seconds']:g} s + 5 s with 0 lost hosts "
          f"({row['lost_hosts']} lost): {verdict}")
    if row["lost_examples"]:
        print(f"   lost, e.g.: {', '.join(row['lost_examples'])}")


if __name__ == "__main__":
    main()
