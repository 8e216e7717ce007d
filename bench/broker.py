"""broker: Tansu 0.6's read latency against the number of record batches in a partition.

`python -m bench broker` (not in CI; `--json` for one object per row). Writes records of 100
bytes to one partition, either one record per produce request (each its own batch, as a client
sending events one by one at a low rate does) or 1 000 per request, and after every 1 000
records times a marker record from produce to a consumer reading the partition's tail. The
soak (bench/soak.py) batches its market because of what this shows: with one record per batch
the broker's read latency grows with the batches held until it stops serving the partition.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import table
from tests.support.broker import TansuBroker

GIVE_UP_S = 20.0  # a marker not read in this long: the partition is not being served


async def _series(per_request: int, total: int, every: int) -> list[dict[str, Any]]:
    broker = TansuBroker().start()
    rows: list[dict[str, Any]] = []
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=10,
                                enable_auto_commit=False)  # fmt: skip
    try:
        await producer.start()
        await producer.send_and_wait("t", b"x", partition=0)
        await consumer.start()
        tp = TopicPartition("t", 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        sent = batches = 0
        while sent < total:
            for _ in range(every // per_request):
                if per_request == 1:
                    await producer.send_and_wait("t", b"v" * 100, partition=0)
                else:  # issued together, they leave as one batch
                    futures = [await producer.send("t", b"v" * 100, partition=0)
                               for _ in range(per_request)]  # fmt: skip
                    await asyncio.gather(*futures)
                batches += 1
            sent += every
            marker, began = f"m{sent}".encode(), time.perf_counter()
            await producer.send_and_wait("t", marker, partition=0)
            seen = False
            while not seen and time.perf_counter() - began < GIVE_UP_S:
                got = await consumer.getmany(tp, timeout_ms=200, max_records=100_000)
                seen = any(r.value == marker for recs in got.values() for r in recs)
            rows.append({"records_per_batch": per_request, "records": sent, "batches": batches,
                         "read_ms": round((time.perf_counter() - began) * 1e3, 1) if seen else None,
                         "served": seen})  # fmt: skip
            if not seen:
                break
    finally:
        await consumer.stop()
        await producer.stop()
        broker.stop()
    return rows


def main(quick: bool = False, json_out: bool = False) -> None:
    total = 10_000 if quick else 30_000
    rows = asyncio.run(_series(1, total, 1000)) + asyncio.run(_series(1000, total, 1000))
    if json_out:
        for r in rows:
            print(json.dumps({"bench": "broker", **r}), flush=True)
        return
    shown = [r for r in rows if r["records"] % 5000 == 0 or not r["served"]]
    print(table(["records/batch", "records", "batches", "marker read ms", "served"],
                [[r["records_per_batch"], r["records"], r["batches"],
                  "-" if r["read_ms"] is None else r["read_ms"], r["served"]] for r in shown]))  # fmt: skip
    print(f"   a marker not read within {GIVE_UP_S:g} s counts as not served; one partition, "
          "100-byte records, Tansu on loopback")
