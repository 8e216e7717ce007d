"""soak: the pipeline over Kafka at a steady event rate with faults on a schedule.

`python -m bench soak --minutes N` (default 10; not in CI). Observer, decider and applier run
in this process on a Tansu broker on loopback; the market is fed at 200 events/s. Faults: the
broker paused (SIGSTOP) for 10 s at 25 % of the run, killed and restarted on the same port at
55 % (Tansu keeps topics in memory: they are gone and recreated), and a poison record (invalid
UTF-8, deep nesting or 2 MB, in turn) every minute. Prints events in, decisions out, dead
letters, the longest gap between decisions and the RSS slope in MB/hour (least squares over
the samples after the first fifth of the run).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import resource
import signal
import sys
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bench.common import table
from services.applier.service import ApplierService
from services.bus.consume import publish_bounded
from services.bus.kafka import KafkaBus
from services.decider.service import DeciderService
from services.observer.probe import HardwareProbe
from services.observer.service import ObserverService
from shared.config import Settings
from shared.messages import MarketEntropy, ProfitPotential, encode
from tests.support.broker import TansuBroker

RATE = 200.0
HOST = "soak-host"
PAUSE_SECONDS = 10.0
RAMP_S = 40.0  # the market's ramp: 0.5 to 1.0 in this long, then down again
GAP_SLACK_S = 30.0  # target: no gap longer than the longest outage plus this
SLOPE_TARGET = 5.0  # MB/hour
POISON = [
    b'{"event_time":1,"host_id":"\xff\xfe","value":0.5}',
    b'{"x":' + b"[" * 5000 + b"]" * 5000 + b',"event_time":1,"host_id":"h","value":0.5}',
    b'{"event_time":1,"host_id":"h","value":0.5,"x":"' + b"a" * 2_000_000 + b'"}',
]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    n = len(samples)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 3600 * sum((t - mt) * (v - mv) for t, v in samples) / var if var else float("nan")


async def _send_poison(bootstrap: str, topic: str, value: bytes) -> bool:
    """A poison record from a client of its own that allows 4 MB requests (the services' own
    producer refuses anything above 1 MB before it reaches the broker)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 << 20)
    try:
        await asyncio.wait_for(producer.start(), 10)
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=HOST.encode()), 10)
        return True
    except (TimeoutError, KafkaError):
        return False
    finally:
        await asyncio.wait_for(producer.stop(), 10)


async def soak(minutes: float, pause_at: float = 0.25, restart_at_share: float = 0.55) -> dict[str, Any]:
    total = minutes * 60
    s = Settings(sensor_interval_seconds=1.0)
    t = s.topics
    broker = TansuBroker().start()
    topics = [t.hardware, t.sensors, t.entropy, t.profit, t.ticks, t.decisions, t.applied, t.dlq]
    bus = KafkaBus(broker.bootstrap, connect_timeout=30, send_timeout=5, topics=topics,
                   compacted_topics=[t.hardware])  # fmt: skip
    stop, feed_stop = asyncio.Event(), asyncio.Event()
    counts: Counter[str] = Counter()
    decided: list[float] = []
    rss: list[tuple[float, float]] = []
    restart_at: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await bus.start()
        observer = ObserverService(bus, HardwareProbe(s, HOST), s)
        decider = DeciderService(bus, s, HOST)
        applier = ApplierService(bus, s, HOST)
        decider.on_decision = lambda d: decided.append(time.monotonic())
        tasks = [asyncio.create_task(x.run(stop)) for x in (observer, decider, applier)]
        start = time.monotonic()
        rng = random.Random(7)

        async def feed() -> None:
            i = 0
            while not feed_stop.is_set():
                due = start + i / RATE
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                now = time.time()
                # A market that keeps asking for decisions: a ramp from 0.5 to 1.0 over RAMP_S,
                # then back down, with a little noise. Each rise of the ramp is a scale-up the
                # stabiliser publishes at once; each drop is held for the scale-down window
                # (30 s) and then published. A swell shorter than the window, or white noise,
                # keeps the window's maximum up and asks for almost no decisions at all.
                ramp = ((time.monotonic() - start) % RAMP_S) / RAMP_S
                value = min(1.0, max(0.0, 0.5 + 0.5 * ramp + rng.uniform(-0.02, 0.02)))
                if i % 2:
                    msg: MarketEntropy | ProfitPotential = MarketEntropy(
                        event_time=now, host_id=HOST, value=value
                    )
                else:
                    msg = ProfitPotential(event_time=now, host_id=HOST, value=value)
                topic = t.entropy if i % 2 else t.profit
                if await publish_bounded(bus, topic, HOST, encode(msg), feed_stop, "event", 1):
                    counts["events_in"] += 1
                i = max(i + 1, int((time.monotonic() - start) * RATE))  # no catch-up burst

        async def watchdog() -> None:
            """A stall of the decider (no decision and no record handled for 60 s) prints
            every task's stack once: where it waits is the finding."""
            seen, quiet_since, told = -1, time.monotonic(), False
            while not feed_stop.is_set():
                await asyncio.sleep(5)
                progress = sum(v for k, v in decider.stats.items() if k.startswith("handled:"))
                if progress != seen:
                    seen, quiet_since, told = progress, time.monotonic(), False
                elif not told and time.monotonic() - quiet_since > 60:
                    told = True
                    counts["stalls"] += 1
                    print(f"soak: decider stalled at {time.monotonic() - start:.0f} s; tasks:",
                          file=sys.stderr)  # fmt: skip
                    for task in asyncio.all_tasks():
                        task.print_stack(limit=8, file=sys.stderr)

        async def faults() -> None:
            paused = restarted = False
            poisons = 0
            while time.monotonic() - start < total:
                await asyncio.sleep(1)
                el = time.monotonic() - start
                rss.append((el, rss_mb()))
                if el >= 60 * (poisons + 1) - 30:  # mid-minute, every minute
                    poison = POISON[poisons % len(POISON)]
                    poisons += 1
                    if await _send_poison(broker.bootstrap, t.entropy, poison):
                        counts["poison_sent"] += 1
                if not paused and el >= pause_at * total and broker.proc is not None:
                    paused = True
                    broker.proc.send_signal(signal.SIGSTOP)
                    await asyncio.sleep(PAUSE_SECONDS)
                    broker.proc.send_signal(signal.SIGCONT)
                    counts["outage_pause_s"] = int(PAUSE_SECONDS)
                if not restarted and el >= restart_at_share * total and broker.proc is not None:
                    restarted = True
                    down = time.monotonic()
                    broker.proc.kill()
                    broker.proc.wait()
                    await asyncio.sleep(2)
                    broker.start()  # the same port: clients reconnect to it
                    counts["outage_restart_s"] = round(time.monotonic() - down)
                    restart_at.append(time.monotonic())

        feeder = asyncio.create_task(feed())
        dog = asyncio.create_task(watchdog())
        await faults()
        feed_stop.set()
        await feeder
        await dog
        gaps = [b - a for a, b in itertools.pairwise(decided)]
        warm = [x for x in rss if x[0] >= 0.2 * total]
        out = {
            "events_in": counts["events_in"],
            "decisions_out": len(decided),
            "dead_letters": decider.stats["dead_letters"] + applier.stats["dead_letters"],
            "dead_letters_dropped": decider.stats["dead_letters_dropped"]
            + applier.stats["dead_letters_dropped"],
            "poison_sent": counts["poison_sent"],
            "applied": applier.stats["applied"],
            "decisions_after_restart": sum(x > restart_at[0] for x in decided) if restart_at else 0,
            "first_decision_after_restart_s": min(
                (x - restart_at[0] for x in decided if x > restart_at[0]), default=float("nan")
            )
            if restart_at
            else float("nan"),
            "longest_gap_s": max(gaps, default=float("nan")),
            "longest_gap_from_s": round(decided[gaps.index(max(gaps))] - start, 1) if gaps else -1.0,
            "pause_at_s": round(pause_at * total, 1),
            "restart_at_s": round(restart_at[0] - start, 1) if restart_at else -1.0,
            "rss_start_mb": rss[0][1] if rss else float("nan"),
            "rss_end_mb": rss[-1][1] if rss else float("nan"),
            "rss_slope_mb_per_h": slope_per_hour(warm),
            # After the last broker fault (the restart at 55 %): steps from faults left out.
            "rss_slope_last_40pct_mb_per_h": slope_per_hour([x for x in rss if x[0] >= 0.6 * total]),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "services_alive": sum(not x.done() for x in tasks),
            "decider_stalls": counts["stalls"],
            "rss_by_minute_mb": " ".join(f"{v:.1f}" for t_, v in rss if int(t_) % 60 == 0),
            "outage_pause_s": float(counts["outage_pause_s"]),
            "outage_restart_s": float(counts["outage_restart_s"]),
        }
        return out
    finally:
        stop.set()
        feed_stop.set()
        for task in tasks:
            try:
                await asyncio.wait_for(task, 15)
            except Exception:
                pass
        await bus.stop()
        if broker.proc is not None and broker.proc.poll() is None:
            broker.proc.send_signal(signal.SIGCONT)
        broker.stop()


def main(quick: bool = False, minutes: float = 10.0) -> None:
    res = asyncio.run(soak(1.0 if quick else minutes))
    print(table(["measure", "value"], [[k, v] for k, v in res.items()]))
    outage = max(res.get("outage_pause_s", 0.0), res.get("outage_restart_s", 0.0))
    gap_ok = res["longest_gap_s"] <= outage + GAP_SLACK_S
    slope_ok = res["rss_slope_mb_per_h"] < SLOPE_TARGET
    print(f"   target: longest gap {res['longest_gap_s']:.1f} s <= longest outage {outage:g} s + "
          f"{GAP_SLACK_S:g} s: {'met' if gap_ok else 'NOT met'}")
    print(f"   target: RSS slope {res['rss_slope_mb_per_h']:.2f} MB/h < {SLOPE_TARGET:g} MB/h "
          f"(samples after the first fifth): {'met' if slope_ok else 'NOT met'}")
