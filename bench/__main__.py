"""`python -m bench [NAME ...]`: run the benchmarks (all by default) and print their tables.

Absolute times on a shared machine are noise; every table sets ours beside a baseline measured
in the same run, and the ratios are what to read.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time

NAMES = ["pipeline", "decision", "observer", "codecs", "pool", "scale", "sizer"]
SLOW = ["soak", "fleet", "broker", "rejoin", "restarts", "footprint", "top_tier"]  # run only when named: minutes long, broker faults, kills, limits, child processes


def main() -> int:
    if sys.argv[1:2] == ["engine"]:  # own options (--json, --limit-bytes, ...); not in the default set
        from bench import engine

        engine.main(argv=sys.argv[2:])
        return 0
    if sys.argv[1:2] == ["engine-soak"]:  # own options (--minutes, --json)
        from bench import engine_soak

        engine_soak.main(argv=sys.argv[2:])
        return 0
    if sys.argv[1:2] == ["memory"]:  # own options (--json, --limit-mib, --seconds); root
        from bench import memory_controller

        memory_controller.main(argv=sys.argv[2:])
        return 0
    if sys.argv[1:2] == ["codecs"]:  # own options too (--csv FILE, --price-column, ...)
        from bench import codecs

        codecs.main(argv=sys.argv[2:])
        return 0
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("names", nargs="*", choices=[*NAMES, *SLOW, []], help="which (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer iterations (for CI smoke runs)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per row on stdout (pipeline, scale, fleet, soak), and nothing else")  # fmt: skip
    p.add_argument("--minutes", type=float, default=10.0, help="soak: how long (default 10)")
    p.add_argument("--market-batch", type=int, default=20, metavar="N",
                   help="soak: market events per produce request (default 20; 1 shows Tansu's "
                   "slowdown with many small batches)")  # fmt: skip
    args = p.parse_args()
    for name in args.names or NAMES:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            continue
        started = time.perf_counter()
        takes_json = "json_out" in inspect.signature(mod.main).parameters
        extra = {"minutes": args.minutes, "market_batch": args.market_batch} if name == "soak" else {}
        if args.json:
            if takes_json:
                mod.main(quick=args.quick, json_out=True, **extra)
            else:
                print(f"bench {name}: no --json output", file=sys.stderr)
            continue
        print(f"\n== {name}: {mod.__doc__.strip().splitlines()[0]}", flush=True)
        mod.main(quick=args.quick, **extra)
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
