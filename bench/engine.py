"""engine: the engine process in a real child cgroup, float64 vs float16-naive vs qas, CPU squeeze halfway.

Contract: bench/engine_contract.py. Default engine is examples/trading_engine.py; --engine points at
another script (tests/bench/standin_engine.py is a STAND-IN, its numbers say nothing about QAS).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.cgroup import Cgroup
from bench.engine_contract import (
    MODES,
    Run,
    engine_argv,
    p99_in,
    pnl_diff_bp,
    positions_match_ratio,
    recovery_seconds,
    slack,
)

RESULTS = Path(__file__).parent / "results"


def run_one(script: str, mode: str, a: argparse.Namespace, limit: int | None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".thermal", delete=False) as f:
        f.write("0.0")
        thermal = f.name
    lim = limit if limit is not None else 1 << 40
    cg = Cgroup(f"qas-bench-{os.getpid()}-{mode}", lim, a.cores)
    run = Run()
    sq0, sq1 = a.seconds / 2, a.seconds / 2 + a.squeeze_seconds
    started = time.monotonic()
    try:
        cg.create()
        import subprocess
        p = cg.start(engine_argv(sys.executable, script, mode, a.seed, a.symbols, a.seconds,
                                 a.objective_ms, lim, thermal), stdout=subprocess.PIPE)

        def squeeze() -> None:
            if limit is None:
                return
            time.sleep(sq0)
            if p.poll() is None:
                cg.set_cpu(a.cores / 4)
                Path(thermal).write_text("0.9")
            time.sleep(a.squeeze_seconds)
            if p.poll() is None:
                cg.set_cpu(a.cores)
                Path(thermal).write_text("0.0")

        th = threading.Thread(target=squeeze, daemon=True)
        th.start()
        assert p.stdout is not None
        for raw in p.stdout:
            run.feed(raw.decode(errors="replace"))
        rc = p.wait()
        killed = cg.killed_by_oom(rc)
        killed_at = time.monotonic() - started if killed else None
        peak = cg.peak_bytes()
    finally:
        cg.cleanup()
        os.unlink(thermal)
    last = run.intervals[-1] if run.intervals else {}
    return {"config": mode, "killed": killed, "killed_at_s": killed_at, "returncode": rc,
            "ticks": last.get("ticks", 0), "trading_hours": last.get("sim_hours", 0.0),
            "peak_memory_bytes": peak, "memory_limit_bytes": limit,
            "slack": slack(limit, peak) if limit else None,
            "throughput_ticks_s": (last.get("ticks", 0) / last["t"]) if last.get("t") else None,
            "p99_batch_ms_before": p99_in(run, 0, sq0), "p99_batch_ms_squeeze": p99_in(run, sq0, sq1),
            "p99_batch_ms_after": p99_in(run, sq1, 1e9),
            "recovery_seconds": recovery_seconds(run, sq0, a.objective_ms), "_run": run}


def targets(rows: dict[str, dict[str, Any]], objective: float) -> list[tuple[str, bool]]:
    f, q = rows["float64"], rows["qas"]
    hours_ratio = q["trading_hours"] / f["trading_hours"] if f["trading_hours"] else float("inf")
    return [
        ("qas never killed where float64 is", f["killed"] and not q["killed"]),
        (f"qas covers >= 4x float64 trading hours ({hours_ratio:.1f}x)", hours_ratio >= 4),
        ("qas positions match reference on >= 99.9% of bars", (q["positions_match_ratio"] or 0) >= 0.999),
        ("qas PnL differs < 1 bp", q["pnl_diff_bp"] is not None and q["pnl_diff_bp"] < 1),
        ("qas p99 back under objective within 10 s of squeeze",
         q["recovery_seconds"] is not None and q["recovery_seconds"] <= 10),
        ("float64 p99 stays above objective in squeeze", (f["p99_batch_ms_squeeze"] or 0) > objective),
        ("qas slack <= 15% with no kill", not q["killed"] and q["slack"] is not None and q["slack"] <= 0.15),
    ]


def plot(rows: dict[str, dict[str, Any]], a: argparse.Namespace, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    for name, row in rows.items():
        iv = row["_run"].intervals
        t = [r["t"] for r in iv]
        for ax, key in zip(axes, ("rss_bytes", "precision_bits", "batch_size", "p99_batch_ms"), strict=True):
            ax.plot(t, [r[key] for r in iv], label=name)
            ax.set_ylabel(key)
    axes[0].axhline(a.limit_bytes, color="k", ls="--", label="limit")
    axes[3].axhline(a.objective_ms, color="k", ls=":", label="objective")
    for ax in axes:
        ax.axvspan(a.seconds / 2, a.seconds / 2 + a.squeeze_seconds, color="orange", alpha=0.2)
    axes[0].legend()
    axes[-1].set_xlabel("seconds")
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path)
    return True


def main(quick: bool = False, argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench engine")
    p.add_argument("--engine", default="examples/trading_engine.py")
    p.add_argument("--seconds", type=float, default=20 if quick else 75)
    p.add_argument("--squeeze-seconds", type=float, default=None)
    p.add_argument("--limit-bytes", type=int, default=160 * 1024 * 1024)
    p.add_argument("--cores", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--symbols", type=int, default=50)
    p.add_argument("--objective-ms", type=float, default=25.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv if argv is not None else [])
    if a.squeeze_seconds is None:
        a.squeeze_seconds = a.seconds / 4
    standin = "standin" in Path(a.engine).name
    note = "STAND-IN ENGINE: numbers below come from tests/bench/standin_engine.py, not the real engine"
    if standin and not a.json:
        print(note)
    ref = run_one(a.engine, "float64", a, None)["_run"]
    rows: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        row = run_one(a.engine, mode, a, a.limit_bytes)
        row["positions_match_ratio"] = positions_match_ratio(row["_run"], ref)
        row["pnl_diff_bp"] = pnl_diff_bp(row["_run"], ref)
        row["engine"] = a.engine
        row["stand_in"] = standin
        rows[mode] = row
    if a.json:
        for row in rows.values():
            print(json.dumps({k: v for k, v in row.items() if k != "_run"}))
        return
    cols = ("killed", "killed_at_s", "ticks", "trading_hours", "peak_memory_bytes", "slack",
            "p99_batch_ms_before", "p99_batch_ms_squeeze", "p99_batch_ms_after", "recovery_seconds",
            "positions_match_ratio", "pnl_diff_bp")
    print(f"   {'':24}" + "".join(f"{m:>16}" for m in MODES))
    for c in cols:
        vals = [rows[m][c] for m in MODES]
        print(f"   {c:24}" + "".join(f"{(f'{v:.3g}' if isinstance(v, float) else str(v)):>16}" for v in vals))
    for text, ok in targets(rows, a.objective_ms):
        print(f"   [{'met' if ok else 'NOT met'}] {text}")
    png = RESULTS / "engine.png"
    print(f"   plot: {png}" if plot(rows, a, png) else "   plot: matplotlib not installed, skipped")
    if standin:
        print(note)
