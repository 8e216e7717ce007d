"""A full garbage collection once a minute, for a service that runs for weeks.

CPython collects its oldest generation only when the objects promoted into it since the last
full collection reach a quarter of those already there (about 46 000 in a running decider).
A broker restart makes aiokafka retry a refused commit every 100 ms until the service rejoins;
each retry leaves its exception, traceback and frames in a reference cycle that lives long
enough to be promoted (8 900 objects from 294 refused commits per restart, measured while the
consumer still waited for three commit time-outs; it now rejoins after 2 s). They wait,
sometimes across faults, for a full collection; long-lived objects settle in the pools between
them, so the next fault's garbage needs fresh pages: the resident size stepped up at every
restart.
A rejoin now collects the old client's garbage itself (services/bus/kafka.py); this sweep
bounds what is left from anywhere else. `python -m bench restarts` (two deciders fed 200
events/s, six broker restarts, side by side): +0.28 MB with the sweep, +0.43 MB on CPython's
schedule; before the rejoin's own collection, +0.68 MB against +1.32 MB.
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
