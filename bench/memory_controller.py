"""The engine client's memory controller in a real memory cgroup, beside the budgets it replaces.

`python -m bench memory [--json] [--limit-mib 160] [--seconds 40]` (root, cgroup v1 or v2).

Each mode runs one child process in its own cgroup with the same memory limit. The child is an
engine stand-in: every 0.1 s it appends a chunk of prices on a 0.01 tick grid (all history kept
in the engine store) and grows its own memory by a fixed amount (its state), for ``--seconds``;
once a second it takes a memory-controller step (mode ``controller``) or leaves the store's
budget as it was set at the start:

- ``unbounded``: the store's budget is larger than the limit (no control at all);
- ``half-headroom``: the example engine's former guess, half of (limit - RSS at start);
- ``controller``: ``EngineClient`` with ``memory_limit_bytes`` only: its controller sets it.

Per mode: OOM-killed or not, the peak working set the child sampled (cgroup use less
inactive_file) against the limit, the kernel's own peak (``max_usage_in_bytes``/``memory.peak``,
which also counts page cache), and the store's compressed and evicted blocks. Targets: the
controller is never OOM-killed and its peak working set is 85-95 % of the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]


def child(mode: str, seconds: float, limit: int, append_mib_s: float, grow_mib_s: float) -> None:
    import numpy as np

    from core.engine.client import EngineClient
    from core.engine.feedback import resident_bytes
    from core.engine.memory import MemoryReader
    from services.bus.memory import MemoryBus

    reader = MemoryReader()
    start_rss = resident_bytes()
    budget = {"unbounded": 1 << 40, "half-headroom": max(MiB, (limit - start_rss) // 2)}
    client = EngineClient(MemoryBus(), host_id="bench", memory_limit_bytes=limit,
                          store_budget_bytes=budget.get(mode, 64 * MiB))  # fmt: skip
    rng = np.random.default_rng(7)
    tick = 0.1
    per_tick = int(append_mib_s * MiB * tick / 8)  # float64 values appended each tick
    symbols = 50
    per_symbol = max(1, per_tick // symbols)
    last = np.full(symbols, 100.0)
    own: list[Any] = []  # the engine's own state, growing
    peak = 0
    t0 = time.monotonic()
    next_step = t0
    n = 0
    while time.monotonic() - t0 < seconds:
        steps = rng.integers(-3, 4, size=(per_symbol, symbols))
        prices = np.round(last + 0.01 * np.cumsum(steps, axis=0), 2)
        last = prices[-1]
        for s in range(symbols):
            client.store.append(f"s{s}", prices[:, s], value=0.5)
        own.append(np.ones(int(grow_mib_s * MiB * tick / 8)))
        n += 1
        now = time.monotonic()
        if now >= next_step:
            next_step += 1.0
            if mode == "controller":
                client.control_memory()
            r = reader.read()
            peak = max(peak, r.used_bytes if r.source.startswith("cgroup") else r.rss_bytes)
            print(json.dumps({"t": round(now - t0, 1), "used": r.used_bytes,
                              "budget": client.store.budget_bytes,
                              "store": client.store.nbytes()}), flush=True)  # fmt: skip
        time.sleep(max(0.0, t0 + n * tick - time.monotonic()))
    r = reader.read()
    peak = max(peak, r.used_bytes)
    pool = client.store.pool
    print(json.dumps({"done": True, "peak_working_set": peak, "compressed": pool.compressed,
                      "evicted": pool.evicted, "downgraded": pool.downgraded,
                      "store_bytes": client.store.nbytes(), "start_rss": start_rss,
                      "last_reason": None if client.memory is None else client.memory.reason}),
          flush=True)  # fmt: skip
    asyncio.run(client.bus.stop())


def run_mode(mode: str, a: argparse.Namespace) -> dict[str, Any]:
    from bench.cgroup import Cgroup

    limit = int(a.limit_mib * MiB)
    cg = Cgroup(f"qas-bench-memory-{uuid.uuid4().hex[:8]}", limit, 1.0)
    cg.create()
    try:
        argv = [sys.executable, "-m", "bench.memory_controller", "--child", mode,
                "--seconds", str(a.seconds), "--limit-mib", str(a.limit_mib),
                "--append-mib-s", str(a.append_mib_s), "--grow-mib-s", str(a.grow_mib_s)]  # fmt: skip
        started = time.monotonic()
        p = cg.start(argv, cwd=ROOT, stdout=subprocess.PIPE,
                     env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        out, _ = p.communicate(timeout=a.seconds + 120)
        lines = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
        killed = cg.killed_by_oom(p.returncode)
        done: dict[str, Any] = next((x for x in lines if x.get("done")), {})
        samples = [x for x in lines if "used" in x]
        peak = max([done.get("peak_working_set", 0)] + [x["used"] for x in samples])
        return {
            "mode": mode, "killed": killed, "returncode": p.returncode,
            "seconds": round(time.monotonic() - started, 1),
            "lived_seconds": samples[-1]["t"] if samples else 0.0,
            "memory_limit_bytes": limit, "peak_working_set_bytes": peak,
            "peak_share": round(peak / limit, 3), "kernel_peak_bytes": cg.peak_bytes(),
            "compressed": done.get("compressed"), "evicted": done.get("evicted"),
            "final_budget_bytes": samples[-1]["budget"] if samples else None,
            "last_reason": done.get("last_reason"),
        }  # fmt: skip
    finally:
        cg.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="one JSON object per row")
    p.add_argument("--limit-mib", type=float, default=160.0)
    p.add_argument("--seconds", type=float, default=45.0)
    p.add_argument("--append-mib-s", type=float, default=4.0, help="float64 MiB appended a second")
    p.add_argument("--grow-mib-s", type=float, default=0.3, help="the engine's own growth")
    p.add_argument("--child", choices=["unbounded", "half-headroom", "controller"])
    a = p.parse_args(argv)
    if a.child:
        child(a.child, a.seconds, int(a.limit_mib * MiB), a.append_mib_s, a.grow_mib_s)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench memory needs root (it creates memory cgroups)")
    rows = [run_mode(m, a) for m in ("unbounded", "half-headroom", "controller")]
    ctl = rows[-1]
    targets = [
        {"target": "controller OOM-killed", "value": "never", "measured": ctl["killed"],
         "met": not ctl["killed"]},
        {"target": "controller peak working set / limit", "value": "0.85-0.95",
         "measured": ctl["peak_share"], "met": 0.85 <= ctl["peak_share"] <= 0.95},
        {"target": "the limit binds (unbounded is OOM-killed)", "value": "validity",
         "measured": rows[0]["killed"], "met": rows[0]["killed"]},
    ]  # fmt: skip
    if a.json:
        for r in [*rows, *targets]:
            print(json.dumps(r))
        return
    print(f"limit {a.limit_mib:.0f} MiB, {a.seconds:.0f} s, appends {a.append_mib_s} MiB/s of "
          f"float64 prices (0.01 grid), own growth {a.grow_mib_s} MiB/s")  # fmt: skip
    print(f"{'mode':<14} {'killed':>6} {'lived s':>7} {'peak/limit':>10} {'kernel peak MiB':>15} "
          f"{'compressed':>10} {'evicted':>7} {'budget MiB':>10}")  # fmt: skip
    for r in rows:
        kp = r["kernel_peak_bytes"]
        fb = r["final_budget_bytes"]
        print(f"{r['mode']:<14} {r['killed']!s:>6} {r['lived_seconds']:>7.1f} "
              f"{r['peak_share']:>10.3f} {'-' if kp is None else f'{kp / MiB:.1f}':>15} "
              f"{r['compressed']!s:>10} {r['evicted']!s:>7} "
              f"{'-' if fb is None else f'{fb / MiB:.1f}':>10}")  # fmt: skip
    print(f"controller: {ctl['last_reason']}")
    for t in targets:
        print(f"{t['target']}: {t['value']} — measured {t['measured']}: "
              f"{'met' if t['met'] else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
