"""restarts: a decider's resident size across broker restarts, with and without the gc sweep.

Two `qas decider` processes side by side, each on its own Tansu broker and fed 200 market
events/s; both brokers are killed and started again at the same moments (Tansu keeps topics in
memory, so each restart is a cluster that forgot everything). After each restart has settled
the bench reads each decider's resident size (psutil). One decider runs with the default
``--gc-interval`` (a full collection every 60 s, app/garbage.py), the other with
``--gc-interval 0`` (CPython's own schedule only): the baseline. Memory a restart takes once
and reuses shows as a first step and then a flat line; memory each restart keeps, as steps
that go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import psutil

from app.keys import write_key_pair
from bench.common import table
from services.bus.kafka import KafkaBus
from shared.config import Settings
from shared.messages import MarketEntropy, ProfitPotential, encode
from tests.support.broker import TansuBroker, free_port

ARMS = {
    "gc every 60 s (default)": [],
    "CPython's schedule only (--gc-interval 0)": ["--gc-interval", "0"],
}
WARM_SECONDS = 30.0  # before the first sample: start-up, group join, the first decisions
EVENTS_PER_TICK = 20  # every 0.1 s: 200 events/s


class _Arm:
    """One broker, one feed and one decider."""

    def __init__(self, name: str, args: list[str], logs: Path) -> None:
        self.name, self.args, self.logs = name, args, logs
        self.broker = TansuBroker()
        self.bus: KafkaBus | None = None
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, key: Path) -> None:
        t = Settings().topics
        self.broker.start()
        self.bus = KafkaBus(self.broker.bootstrap, connect_timeout=30, send_timeout=5,
                            topics=t.all(), compacted_topics=[t.hardware])  # fmt: skip
        await self.bus.start()
        qas = Path(sys.executable).with_name("qas")
        with (self.logs / f"{self.name[:2]}-decider.log").open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                str(qas), "decider", "--bootstrap-servers", self.broker.bootstrap, "--host-id",
                "h", "--signing-key-file", str(key), "--metrics-port", str(free_port()),
                *self.args, stdout=asyncio.subprocess.DEVNULL, stderr=err)  # fmt: skip

    async def feed(self, stop: asyncio.Event) -> None:
        t, rng = Settings().topics, random.Random(1)
        assert self.bus is not None
        while not stop.is_set():
            now, sends = time.time(), []
            for j in range(EVENTS_PER_TICK):
                if j % 2:
                    value = 0.6 + 0.4 * rng.random()
                    msg = encode(MarketEntropy(event_time=now, host_id="h", value=value))
                    sends.append(self.bus.publish(t.entropy, "h", msg))
                else:
                    msg = encode(ProfitPotential(event_time=now, host_id="h", value=0.5))
                    sends.append(self.bus.publish(t.profit, "h", msg))
            # A send waits while the broker is away; the tick goes on without it.
            await asyncio.gather(*(asyncio.wait_for(s, 6) for s in sends), return_exceptions=True)
            await asyncio.sleep(0.1)

    def rss(self) -> float:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    async def kill_broker(self) -> None:
        assert self.broker.proc is not None
        self.broker.proc.kill()
        await asyncio.to_thread(self.broker.proc.wait)

    async def stop(self) -> int | None:
        code = None
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                code = await asyncio.wait_for(self.proc.wait(), 20)
            if code is None:
                self.proc.kill()
        if self.bus is not None:
            await self.bus.stop()
        self.broker.stop()
        return code


async def measure(restarts: int, settle: float) -> dict[str, list[float]]:
    """Each arm's decider RSS (MB) when warm and after each restart has settled."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the feed's refused sends, by design
    logging.getLogger("qas").setLevel(logging.ERROR)
    logs = Path(tempfile.mkdtemp(prefix="qas-restarts-"))
    key = logs / "k"
    write_key_pair(key)
    arms = [_Arm(name, args, logs) for name, args in ARMS.items()]
    stop = asyncio.Event()
    rss: dict[str, list[float]] = {a.name: [] for a in arms}
    feeds: list[asyncio.Task[None]] = []
    try:
        for arm in arms:
            await arm.start(key)
        feeds = [asyncio.create_task(a.feed(stop)) for a in arms]
        await asyncio.sleep(WARM_SECONDS)
        for arm in arms:
            rss[arm.name].append(arm.rss())
        for i in range(restarts):
            await asyncio.gather(*(a.kill_broker() for a in arms))
            await asyncio.sleep(2)
            await asyncio.gather(*(asyncio.to_thread(a.broker.start) for a in arms))
            await asyncio.sleep(settle)
            for arm in arms:
                rss[arm.name].append(arm.rss())
            print(f"   restart {i + 1}/{restarts}: " + ", ".join(
                f"{v[-1]:.2f} MB" for v in rss.values()), file=sys.stderr, flush=True)  # fmt: skip
    finally:
        stop.set()
        await asyncio.gather(*feeds, return_exceptions=True)
        codes = [await a.stop() for a in arms]
    if any(c not in (0, None) for c in codes):
        raise RuntimeError(f"a decider exited with {codes}; its log is in {logs}")
    shutil.rmtree(logs, ignore_errors=True)
    return rss


def steps(samples: list[float]) -> list[float]:
    """MB taken at each restart: each sample minus the one before it."""
    return [round(b - a, 2) for a, b in itertools.pairwise(samples)]


def main(quick: bool = False) -> None:
    restarts, settle = (2, 40.0) if quick else (6, 50.0)
    rss = asyncio.run(measure(restarts, settle))
    print(table(
        ["decider", "warm MB", *[f"restart {i + 1}" for i in range(restarts)], "total",
         "after the first"],
        [[name, f"{v[0]:.2f}", *[f"{s:+.2f}" for s in steps(v)], f"{v[-1] - v[0]:+.2f}",
          f"{v[-1] - v[1]:+.2f}"] for name, v in rss.items()],
    ))  # fmt: skip
