"""rejoin: resident memory of a consumer that leaves and joins its group again, over a real broker.

A broker restart makes each service rejoin its group (``KafkaConsumer._rejoin``: a fresh
aiokafka consumer, its connections and a new assignment). The soak sees the decider's resident
size step up at such a fault. This bench repeats the rejoin in one process and prints, after
each, the resident size (psutil) and Python's allocated blocks (``sys.getallocatedblocks``,
after a full collection). Beside it, in the same run, the same process fetching as many times
without a rejoin: the noise floor. Python objects that survive a rejoin show as blocks that
keep growing; allocator high-water (pages touched once, reused later) as RSS steps that stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

import psutil

from bench.common import table
from services.bus.kafka import KafkaBus
from tests.support.broker import TansuBroker

TOPICS = ["rejoin.a", "rejoin.b", "rejoin.c"]
RECORDS = 300
Sample = tuple[float, int]  # (RSS MB, Python's allocated blocks)


def _sample(proc: psutil.Process) -> Sample:
    gc.collect()
    return proc.memory_info().rss / 2**20, sys.getallocatedblocks()


async def measure(rounds: int) -> tuple[list[Sample], list[Sample]]:
    """(RSS MB, allocated blocks) before and after each of ``rounds`` fetches, then each of
    ``rounds`` rejoins."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("qas").setLevel(logging.ERROR)  # each rejoin logs a warning by design
    broker = TansuBroker().start()
    bus = KafkaBus(broker.bootstrap, connect_timeout=30, send_timeout=5, topics=TOPICS)
    proc = psutil.Process()
    try:
        await bus.start()
        for i in range(RECORDS):
            await bus.publish(TOPICS[i % 3], f"host-{i % 7}", b"x" * 200)
        consumer = bus.consumer(TOPICS, "rejoin-bench")
        await consumer.start()
        got = 0
        for _ in range(100):
            got += len(await consumer.getmany(0.5))
            if got >= RECORDS:
                break
        idle = [_sample(proc)]
        for _ in range(rounds):  # the baseline: fetches, no rejoin
            await consumer.getmany(0.5)
            idle.append(_sample(proc))
        joined = [idle[-1]]
        for _ in range(rounds):
            await consumer._rejoin()
            await consumer.getmany(0.5)  # the fresh member's first fetch (its assignment)
            joined.append(_sample(proc))
        await consumer.stop()
        return idle, joined
    finally:
        await bus.stop()
        broker.stop()


def main(quick: bool = False) -> None:
    rounds = 8 if quick else 30
    idle, joined = asyncio.run(measure(rounds))
    half = rounds // 2
    rows = [
        [k, f"{rss:.2f}", f"{rss - joined[0][0]:+.2f}", blocks - joined[0][1]]
        for k, (rss, blocks) in enumerate(joined)
        if k <= 10 or k % 5 == 0 or k == rounds
    ]
    print(table(["rejoins", "RSS MB", "RSS since the first", "blocks since the first"], rows))

    def grow(xs: list[Sample], a: int, b: int) -> Sample:
        return xs[b][0] - xs[a][0], xs[b][1] - xs[a][1]

    print(table(
        ["what", f"RSS MB, rounds 0-{half}", f"RSS MB, rounds {half}-{rounds}",
         f"blocks, rounds {half}-{rounds}"],
        [[name, f"{grow(xs, 0, half)[0]:+.2f}", f"{grow(xs, half, rounds)[0]:+.2f}",
          grow(xs, half, rounds)[1]]
         for name, xs in (("fetch only (baseline)", idle), ("rejoin + fetch", joined))],
    ))  # fmt: skip
