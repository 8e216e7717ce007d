"""A full garbage collection once a minute, for a service that runs for weeks.

CPython collects its oldest generation only when the objects promoted into it since the last
full collection reach a quarter of those already there (about 46 000 in a running decider).
A broker restart makes aiokafka retry a refused commit every 100 ms until the service rejoins;
each retry leaves its exception, traceback and frames in a reference cycle that lives long
enough to be promoted (about 9 000 objects of garbage per restart). They then wait, sometimes
across faults, for a full collection; long-lived objects settle in the pools between them, so
the next fault's garbage needs fresh pages and the resident size stepped up at every restart.
Measured on a decider fed 200 events/s over six broker restarts: +0.45, 0.22, 0.15, 0.15,
0.17, 0.13 MB without this; with a full collection about once a minute, +1.00 at the first
restart and +0.03, 0.00, 0.01 after it (each fault's garbage reuses the last one's pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("qas.garbage")



async def sweep_garbage(
    stop: asyncio.Event,
    every: float,
    collect: Callable[[], int] = gc.collect,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """Run a full collection every ``every`` seconds until ``stop``; returns how many ran."""
    runs = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
            break
        started = clock()
        found = collect()
        runs += 1
        log.debug("full collection %d: %d unreachable objects in %.1f ms",
                  runs, found, (clock() - started) * 1000)  # fmt: skip
    return runs
