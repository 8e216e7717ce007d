"""soak: the pipeline over Kafka at a steady event rate with faults on a schedule.

`python -m bench soak --minutes N` (default 10; not in CI; `--json` for one object per row).
Observer, decider and applier run as three `qas` processes (`qas observer|decider|applier
--bootstrap-servers ...`, signed decisions) on a Tansu broker on loopback; this process feeds
the market at 200 events/s and measures. The market is a ramp (entropy 0.6 -> 1.0 over 20 s,
then back to 0.6, profit 0.5, +-0.02 noise): each rise is a run of scale-ups the stabiliser
publishes at once, each drop a scale-down it holds for its window. The decider runs with
`--settings` giving a 5 s scale-down window (the default is 30 s): with 30 s, one host's
decisions pause for 30 s after every peak by design, which leaves no room under the target
(longest outage + 30 s); with 5 s a gap in decisions longer than about 10 s means the pipeline
stalled, not that the policy held.

The engine publishes the market in batches (`--market-batch`, default 20 events every 100 ms,
still 200 events/s), as a Kafka producer with a linger does. Tansu 0.6's memory store serves a
fetch in a time that grows with the number of record batches in the partition: one event per
batch at 200 events/s makes it stop serving reads of the market partition after about 20 000
batches (`--market-batch 1` shows it; README "Reliability").

Faults: the broker paused (SIGSTOP) for 10 s at 25 % of the run, killed and restarted on the
same port at 55 % (Tansu keeps topics in memory: they are gone and recreated), and a poison
record on the entropy topic (invalid UTF-8, nesting 5 000 deep or 2 MB, in turn) every minute,
20 s into it (sent by a client allowed 4 MB requests). A run of 20 minutes or more is cut into
10-minute cycles, each with its own pause and restart at 25 % and 55 % of it: whether memory
taken at a fault is taken again at the next one shows in the RSS at each cycle's end.

Prints events in, decisions out (the decider's --json lines, timed as they arrive), dead
letters (the services' final stats), the longest gap between decisions beside the longest
outage, and the RSS slope in MB/hour of the three service processes (psutil, summed, sampled
every second, least squares over the samples after the first fifth of the first cycle). Targets
(issue 11): longest gap <= longest outage + 30 s; RSS slope < 5 MB/hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import logging
import math
import random
import re
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from app.keys import public_path, write_key_pair
from bench.common import table
from services.bus.consume import publish_bounded
from services.bus.kafka import KafkaBus
from shared.config import Settings
from shared.messages import MarketEntropy, ProfitPotential, encode
from tests.support.broker import TansuBroker, free_port

RATE = 200.0
HOST = "soak-host"
PAUSE_SECONDS = 10.0
RESTART_DOWN_SECONDS = 2.0
POISON_AT_S = 20.0  # seconds into every minute (the faults come at 25 % and 55 %)
RAMP_S = 20.0
SCALE_DOWN_WINDOW_S = 5.0  # the decider's, through --settings (default 30 s)
MARKET_BATCH = 20  # events per produce request, one request every MARKET_BATCH / RATE s
WARM_UP_SHARE = 0.2  # the RSS slope is fitted after this share of the first cycle
CYCLE_MINUTES = 10.0  # a longer run repeats the fault schedule every this many minutes
GAP_ALLOWANCE_S = 30.0
RSS_SLOPE_TARGET = 5.0  # MB/hour
SERVICES = ("observer", "decider", "applier")
POISON = [
    b'{"event_time":1,"host_id":"\xff\xfe","value":0.5}',
    b'{"x":' + b"[" * 5000 + b"]" * 5000 + b',"event_time":1,"host_id":"h","value":0.5}',
    b'{"event_time":1,"host_id":"h","value":0.5,"x":"' + b"a" * 2_000_000 + b'"}',
]
STOPPED = re.compile(r"stopped cleanly: (\{.*\})")
# A decider log line saying the broker refused a decision, with its time.
REFUSED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*publish decision to \S+ failed", re.M)


def longest_refusal(log_text: str, joined: float = 6.0) -> float:
    """The longest run of refused decision publishes in a decider log, in seconds: lines at
    most ``joined`` seconds apart (the retry backoff tops out at 5 s) count as one run."""
    times = [dt.datetime.strptime(a, "%Y-%m-%d %H:%M:%S").timestamp() + int(ms) / 1000
             for a, ms in REFUSED.findall(log_text)]  # fmt: skip
    longest, began = 0.0, None
    for prev, cur in itertools.pairwise(times):
        began = prev if began is None else began
        if cur - prev > joined:
            began = None
            continue
        longest = max(longest, cur - began)
    return longest


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB/hour."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 3600 * sum((t - mt) * (v - mv) for t, v in samples) / var if var else float("nan")


def slopes(
    total: list[tuple[float, float]], each: dict[str, list[tuple[float, float]]], since: float
) -> tuple[float, dict[str, float]]:
    """The RSS slope (MB/hour, 2 decimals) of the total and of each service, fitted over the
    samples from ``since`` seconds into the run on."""
    def fit(samples: list[tuple[float, float]]) -> float:
        return round(slope_per_hour([x for x in samples if x[0] >= since]), 2)

    return fit(total), {n: fit(v) for n, v in each.items()}


def entropy_at(elapsed: float) -> float:
    """The ramp: 0.6 (the top of the normal band) at the start of each period, rising to 1.0
    at its end, then 0.6 again."""
    return 0.6 + 0.4 * (elapsed % RAMP_S) / RAMP_S


def longest_gap(times: list[float], start: float, end: float) -> tuple[float, float]:
    """(longest gap, when it began, seconds into the run) between decisions, counting from the
    first decision to the end of the run (a silent tail counts as a gap)."""
    if not times:
        return end - start, 0.0
    points = [*times, end]
    gap, at = max(((b - a, a) for a, b in itertools.pairwise(points)), default=(0.0, times[0]))
    return gap, at - start


def cycles_in(minutes: float) -> int:
    """How many fault cycles a run of ``minutes`` holds: one up to 20 minutes, then one per 10."""
    return max(1, int(minutes // CYCLE_MINUTES))


def verdicts(out: dict[str, Any]) -> list[dict[str, Any]]:
    outage = max(out["outage_pause_s"], out["outage_restart_s"])
    limit = outage + GAP_ALLOWANCE_S
    return [
        {"target": f"longest gap in decisions reaching the applier <= longest outage + {GAP_ALLOWANCE_S:g} s",
         "value": out["longest_gap_s"], "limit": limit,
         "met": bool(out["longest_gap_s"] <= limit)},
        _slope_verdict("RSS slope of the service processes", out["rss_slope_mb_per_h"]),
    ] + ([
        _slope_verdict("RSS slope after the first fault cycle",
                       out["rss_slope_after_first_cycle_mb_per_h"]),
    ] if out.get("fault_cycles", 1) >= 2 else [])  # fmt: skip


def _slope_verdict(what: str, value: float) -> dict[str, Any]:
    return {"target": f"{what} < {RSS_SLOPE_TARGET:g} MB/hour", "value": value,
            "limit": RSS_SLOPE_TARGET, "met": bool(value < RSS_SLOPE_TARGET)}  # fmt: skip


async def _send_poison(bootstrap: str, topic: str, value: bytes) -> bool:
    """Send one poison record with a client that allows a 2 MB request (the bus's producer
    refuses anything over 1 MB before it reaches the broker)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 << 20,
                                request_timeout_ms=5000)  # fmt: skip
    try:
        await asyncio.wait_for(producer.start(), 10)
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=HOST.encode()), 10)
        return True
    except (TimeoutError, KafkaError) as exc:
        print(f"   poison not sent: {exc!r}", file=sys.stderr)
        return False
    finally:
        with contextlib.suppress(TimeoutError, KafkaError):
            await asyncio.wait_for(producer.stop(), 5)


def _market_lag(port: int) -> int | None:
    """The decider's consumer lag on the market topics, from its /metrics page."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("qas_consumer_lag_records{") and 'topic="market.' in line
    )


async def _spawn(
    name: str, bootstrap: str, key: Path, logs: Path, metrics_port: int
) -> asyncio.subprocess.Process:
    qas = Path(sys.executable).with_name("qas")
    args = [str(qas), name, "--bootstrap-servers", bootstrap, "--host-id", HOST]
    if name == "decider":
        args += ["--settings", str(logs / "decider.toml")]
    if name == "observer":
        args += ["--sensor-interval", "1", "--no-metrics"]
    else:
        # the decider signs with the private key, the applier verifies with the public one
        keys = ["--signing-key-file", str(key)] if name == "decider" else [
            "--verify-key-file", str(public_path(key))]  # fmt: skip
        args += [*keys, "--json", "--metrics-port", str(metrics_port)]
    with (logs / f"{name}.log").open("wb") as err:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=err
        )


async def soak(minutes: float, market_batch: int = MARKET_BATCH) -> dict[str, Any]:
    total = minutes * 60
    cycles = cycles_in(minutes)
    cycle = total / cycles
    warm_up = WARM_UP_SHARE * cycle
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # this harness's own client
    s = Settings(sensor_interval_seconds=1.0)
    t = s.topics
    logs = Path(tempfile.mkdtemp(prefix="qas-soak-"))
    key = logs / "soak.key"
    write_key_pair(key)
    (logs / "decider.toml").write_text(
        f"[decision]\nscale_down_window_seconds = {SCALE_DOWN_WINDOW_S}\n"
    )
    broker = TansuBroker().start()
    bus = KafkaBus(broker.bootstrap, connect_timeout=30, send_timeout=5, topics=s.topics.all(),
                   compacted_topics=[t.hardware])  # fmt: skip
    feed_stop = asyncio.Event()
    counts: Counter[str] = Counter()
    decided: list[float] = []  # decisions made (the decider's --json lines)
    answered: list[float] = []  # decisions that reached the applier over the broker (its answers)
    faults_at: dict[str, list[tuple[float, float]]] = {"pause": [], "restart": []}  # monotonic
    rss: list[tuple[float, float]] = []
    rss_each: dict[str, list[tuple[float, float]]] = {n: [] for n in SERVICES}
    procs: dict[str, asyncio.subprocess.Process] = {}
    ports = {name: free_port() for name in SERVICES}
    lag: list[tuple[float, int]] = []  # (seconds into the run, decider's market lag in records)
    lag_tries: list[float] = []
    ages: list[float] = []  # each decision's entropy_age_seconds
    readers: list[asyncio.Task[None]] = []
    exits: dict[str, int | None] = {}
    stats: dict[str, dict[str, Any]] = {}
    refused_s = 0.0
    try:
        await bus.start()
        for name in SERVICES:
            procs[name] = await _spawn(name, broker.bootstrap, key, logs, ports[name])
        ps = {name: psutil.Process(p.pid) for name, p in procs.items()}

        async def read(name: str, proc: asyncio.subprocess.Process) -> None:
            assert proc.stdout is not None
            async for line in proc.stdout:
                if line.startswith(b'{"type":"decision"'):
                    decided.append(time.monotonic())
                    age = json.loads(line).get("inputs", {}).get("entropy_age_seconds")
                    if age is not None:
                        ages.append(float(age))
                elif line.startswith(b'{"type":"applied"'):
                    answered.append(time.monotonic())
                    status = json.loads(line).get("status", "?")
                    counts[f"applied_{status}"] += 1

        readers = [asyncio.create_task(read(n, procs[n])) for n in ("decider", "applier")]
        start = time.monotonic()
        rng = random.Random(7)

        async def feed() -> None:
            burst = 0
            while not feed_stop.is_set():
                due = start + burst * market_batch / RATE
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                now, el = time.time(), time.monotonic() - start
                sends = []
                for j in range(market_batch):
                    noise = rng.uniform(-0.02, 0.02)
                    msg: MarketEntropy | ProfitPotential
                    if j % 2:
                        msg = MarketEntropy(event_time=now, host_id=HOST,
                                            value=min(1.0, max(0.0, entropy_at(el) + noise)))  # fmt: skip
                    else:
                        msg = ProfitPotential(event_time=now, host_id=HOST, value=0.5 + noise)
                    topic = t.entropy if j % 2 else t.profit
                    sends.append(publish_bounded(bus, topic, HOST, encode(msg), feed_stop, "event", 1))
                # Issued together, the sends of a burst leave in one request per partition.
                sent = await asyncio.gather(*sends, return_exceptions=True)
                counts["events_in"] += sum(x is True for x in sent)
                counts["events_not_sent"] += sum(x is not True for x in sent)
                burst = max(burst + 1, int((time.monotonic() - start) * RATE / market_batch))

        async def faults() -> None:
            paused = restarted = poisons = 0
            while time.monotonic() - start < total:
                await asyncio.sleep(1)
                el = time.monotonic() - start
                mb = {n: p.memory_info().rss / 2**20 for n, p in ps.items() if p.is_running()}
                for n, v in mb.items():
                    rss_each[n].append((el, v))
                rss.append((el, sum(mb.values())))
                if el >= 5 * len(lag_tries):  # every 5 s
                    lag_tries.append(el)
                    behind = await asyncio.to_thread(_market_lag, ports["decider"])
                    if behind is not None:
                        lag.append((el, behind))
                if el >= 60 * poisons + POISON_AT_S:  # every minute, away from the faults
                    poison = POISON[poisons % len(POISON)]
                    poisons += 1
                    if await _send_poison(broker.bootstrap, t.entropy, poison):
                        counts["poison_sent"] += 1
                if paused < cycles and el >= (paused + 0.25) * cycle and broker.proc is not None:
                    paused += 1
                    began = time.monotonic()
                    broker.proc.send_signal(signal.SIGSTOP)
                    await asyncio.sleep(PAUSE_SECONDS)
                    broker.proc.send_signal(signal.SIGCONT)
                    faults_at["pause"].append((began, time.monotonic()))
                if restarted < cycles and el >= (restarted + 0.55) * cycle and broker.proc is not None:
                    restarted += 1
                    began = time.monotonic()
                    broker.proc.kill()
                    await asyncio.to_thread(broker.proc.wait)
                    await asyncio.sleep(RESTART_DOWN_SECONDS)
                    await asyncio.to_thread(broker.start)  # same port: clients reconnect to it
                    faults_at["restart"].append((began, time.monotonic()))

        feeder = asyncio.create_task(feed())
        await faults()
        end = time.monotonic()
        feed_stop.set()
        await feeder
        alive = [n for n, p in procs.items() if p.returncode is None]
        for name in reversed(SERVICES):  # applier, decider, observer: as a deploy stops them
            procs[name].send_signal(signal.SIGINT)
        for name, proc in procs.items():
            try:
                exits[name] = await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                exits[name] = await proc.wait()
            text = (logs / f"{name}.log").read_text(errors="replace")
            # Timed out or refused, and unanswered while fetches were (kafka.py _commit_once).
            counts[f"commit_failed_{name}"] = (text.count("commit failed")
                                               + text.count("commit unanswered"))  # fmt: skip
            if name == "decider":
                refused_s = longest_refusal(text)
            found = STOPPED.findall(text)
            stats.update(json.loads(found[-1]) if found else {})
        await asyncio.gather(*readers, return_exceptions=True)

        def outage(name: str) -> float:
            return max((ended - began for began, ended in faults_at[name]), default=0.0)

        def after(name: str) -> float:
            """The longest wait, over every such fault, for the applier's first answer."""
            return max(
                (min((x - ended for x in answered if x > ended), default=float("nan"))
                 for _, ended in faults_at[name]),
                default=float("nan"),
            )  # fmt: skip

        def per_min(a: float, b: float) -> float:
            return 60 * sum(a <= x < b for x in decided) / (b - a) if b > a else float("nan")

        restart_at = faults_at["restart"][0][0] if faults_at["restart"] else end
        restart_el = restart_at - start
        (logs / "lag.csv").write_text("".join(f"{el:.0f},{n}\n" for el, n in lag))
        # A gap counts decisions that reached the applier: one made but refused by the broker
        # is not out.
        gap, gap_at = longest_gap(answered, start, end)
        made_gap, made_gap_at = longest_gap(decided, start, end)
        (logs / "decisions.txt").write_text("".join(f"{x - start:.2f}\n" for x in decided))
        (logs / "rss.csv").write_text("".join(
            f"{el:.0f},{total_mb:.2f},{','.join(f'{v[i][1]:.2f}' for v in rss_each.values())}\n"
            for i, (el, total_mb) in enumerate(rss) if all(i < len(v) for v in rss_each.values())
        ))  # fmt: skip
        handled = stats.get("decider", {})
        warm = [x for x in rss if x[0] >= warm_up]
        slope, slope_each = slopes(rss, rss_each, warm_up)
        # From the first cycle's end on, every fault comes a second time or more: memory a
        # fault takes once (allocator high-water) is out of it, memory taken at every fault is
        # in it. NaN in a run of one cycle.
        steady, steady_each = (
            slopes(rss, rss_each, cycle) if cycles >= 2
            else (math.nan, {n: math.nan for n in rss_each})
        )  # fmt: skip
        dead = sum(int(v.get("dead_letters", 0)) for v in stats.values())
        out: dict[str, Any] = {
            "minutes": minutes,
            "fault_cycles": cycles,
            "market_batch": market_batch,
            "scale_down_window_s": SCALE_DOWN_WINDOW_S,
            "events_in": counts["events_in"],
            "events_not_sent": counts["events_not_sent"],
            "decider_handled_events": int(handled.get("handled:market.entropy", 0))
            + int(handled.get("handled:market.profit", 0)),
            "decisions_out": len(decided),
            "decider_lag_max_before_restart": max(
                (n for el, n in lag if el < restart_el), default=-1
            ),
            "decider_lag_max_after_restart": max(
                (n for el, n in lag if el >= restart_el), default=-1
            ),
            "decider_lag_at_end": lag[-1][1] if lag else -1,
            "decision_entropy_age_max_s": round(max(ages, default=float("nan")), 2),
            "decisions_per_min_before_restart": round(per_min(start, restart_at), 1),
            "decisions_per_min_after_restart": round(per_min(restart_at, end), 1),
            "applied": counts["applied_applied"],
            "apply_results": sum(v for k, v in counts.items() if k.startswith("applied_")),
            "poison_sent": counts["poison_sent"],
            "dead_letters": dead,
            "dead_letters_by_service": {n: int(v.get("dead_letters", 0)) for n, v in stats.items()},
            "dead_letters_dropped": sum(
                int(v.get("dead_letters_dropped", 0)) for v in stats.values()
            ),
            "pause_at_s": [round(b - start, 1) for b, _ in faults_at["pause"]],
            "outage_pause_s": round(outage("pause"), 1),
            "restart_at_s": [round(b - start, 1) for b, _ in faults_at["restart"]],
            "outage_restart_s": round(outage("restart"), 1),
            "first_answer_after_pause_s": round(after("pause"), 1),
            "first_answer_after_restart_s": round(after("restart"), 1),
            "longest_gap_s": round(gap, 1),
            "longest_gap_began_s": round(gap_at, 1),
            "longest_gap_in_decisions_made_s": round(made_gap, 1),
            "longest_gap_in_decisions_made_began_s": round(made_gap_at, 1),
            "rss_start_mb": round(rss[0][1], 1) if rss else float("nan"),
            "rss_after_warm_up_mb": round(warm[0][1], 1) if warm else float("nan"),
            "rss_end_mb": round(rss[-1][1], 1) if rss else float("nan"),
            "rss_slope_mb_per_h": slope,
            # Between the warm-up and the first broker restart (the pause and poison records
            # inside, the restart's recovery step outside): what a leak would show between faults.
            "rss_slope_before_restart_mb_per_h": round(slope_per_hour(
                [x for x in rss if warm_up <= x[0] < restart_el]), 2),
            # Memory a fault takes once shows as one step; taken again at every fault, as a rise
            # from each cycle's end to the next.
            "rss_at_cycle_ends_mb": [
                round(next((v for el, v in reversed(rss) if el <= (k + 1) * cycle), math.nan), 2)
                for k in range(cycles)
            ],
            "rss_slope_after_first_cycle_mb_per_h": steady,
            "rss_slope_after_first_cycle_by_service_mb_per_h": steady_each,
            "rss_slope_by_service_mb_per_h": slope_each,
            "commit_failures_by_service": {n: counts[f"commit_failed_{n}"] for n in SERVICES},
            # The broker answering the decider's publishes with errors (Tansu after a restart):
            # an outage of the decisions partition that the scheduled outages do not count.
            "broker_refused_decisions_longest_s": round(refused_s, 1),
            "services_alive_at_end": len(alive),
            "exit_codes": exits,
            "logs": str(logs),
        }
        return out
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for task in readers:
            task.cancel()
        await bus.stop()
        if broker.proc is not None and broker.proc.poll() is None:
            broker.proc.send_signal(signal.SIGCONT)
        broker.stop()


def _no_nan(row: Any) -> Any:
    """NaN (not measured) as null, in nested dicts and lists too: JSON has no NaN."""
    if isinstance(row, dict):
        return {k: _no_nan(v) for k, v in row.items()}
    if isinstance(row, list):
        return [_no_nan(v) for v in row]
    return None if isinstance(row, float) and math.isnan(row) else row


def main(
    quick: bool = False, minutes: float = 10.0, json_out: bool = False, market_batch: int = MARKET_BATCH
) -> None:
    try:
        res = asyncio.run(soak(1.0 if quick else minutes, market_batch))
    except KeyboardInterrupt:  # Ctrl-C: the services and the broker are stopped by soak()
        print("   soak interrupted: no figures", file=sys.stderr)
        raise SystemExit(130) from None
    checks = verdicts(res)
    if json_out:
        print(json.dumps({"bench": "soak", **_no_nan(res)}), flush=True)
        for v in checks:
            print(json.dumps({"bench": "soak", **_no_nan(v)}), flush=True)
        return
    print(table(["measure", "value"], [[k, v] for k, v in res.items()]))
    for v in checks:
        print(f"   {v['target']}: {v['value']:.4g} (limit {v['limit']:.4g}): "
              f"{'met' if v['met'] else 'NOT met'}")  # fmt: skip
    if any(math.isnan(v["value"]) for v in checks):
        print("   (nan: not measured)")
