"""engine: endurance of the example engine in a real child cgroup, float64 vs float16-naive vs qas.

Each mode runs under the same memory limit and CPU quota until the kernel kills it, or until it
has traded ``--max-ratio`` (8) times the bars at which float64 was killed; wall time is not its
budget. A CPU squeeze (quota cut to a quarter, announced through ``--thermal-file``) hits every
mode at the same seconds, while float64 is still alive. An unlimited float64 run over the same
bars is the reference for positions and PnL; it is deterministic for its inputs, so it is cached
in bench/results/ under a key of everything that changes it (the engine script, the market and
the engine options). Contract: bench/engine_contract.py.

    python -m bench engine [--json] [--full-mantissa] [--limit-bytes N] [--symbols N] ...
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.cgroup import Cgroup
from bench.engine_contract import (
    I8,
    MODES,
    Run,
    engine_argv,
    p99_in,
    pnl_diff_bp,
    positions_match_ratio,
    read_positions,
    recovery_seconds,
    slack,
)

RESULTS = Path(__file__).parent / "results"
UNLIMITED = 1 << 40
OBJECTIVE_OVER_FLOAT64 = 1.5  # the default objective, times float64's measured p99


def log(a: argparse.Namespace, text: str) -> None:
    """Progress on stderr, so --json's stdout stays one record per line."""
    print(f"   {text}", file=sys.stderr if a.json else sys.stdout, flush=True)


def engine_options(a: argparse.Namespace) -> tuple[str, ...]:
    return ("--batch", str(a.batch), "--interval-seconds", str(a.interval_seconds),
            "--feedback-interval", str(a.feedback_interval))  # fmt: skip


def run_one(a: argparse.Namespace, mode: str, bars: int, limit: int | None, tick: float,
            out: Path) -> dict[str, Any]:  # fmt: skip
    """One engine process in its own cgroup; the squeeze hits it at the same seconds as every
    other limited run (an unlimited run, the reference, gets none)."""
    thermal = out.with_suffix(".thermal")
    thermal.write_text("0.0")
    positions = out.with_suffix(".positions")
    cg = Cgroup(f"qas-bench-{os.getpid()}-{out.name}", limit or UNLIMITED, a.cores)
    run = Run()
    sq0, sq1 = a.squeeze_at, a.squeeze_at + a.squeeze_seconds
    argv = engine_argv(sys.executable, a.engine, mode, seed=a.seed, symbols=a.symbols, bars=bars,
                       tick_size=tick, objective_ms=a.objective_ms or 1e6, limit_bytes=limit or UNLIMITED,
                       thermal_file=str(thermal), positions_out=str(positions),
                       extra=engine_options(a))  # fmt: skip
    stop = threading.Event()
    anon = [0]
    try:
        cg.create()
        p = cg.start(argv, stdout=subprocess.PIPE)

        def squeeze() -> None:
            if limit is None or stop.wait(sq0) or p.poll() is not None:
                return
            cg.set_cpu(a.cores / 4)
            thermal.write_text("0.9")
            if stop.wait(a.squeeze_seconds) or p.poll() is not None:
                return
            cg.set_cpu(a.cores)
            thermal.write_text("0.0")

        def watchdog() -> None:
            if not stop.wait(a.run_timeout) and p.poll() is None:
                p.kill()

        def sample_anon() -> None:
            while not stop.wait(0.1):
                with contextlib.suppress(OSError):
                    anon[0] = max(anon[0], cg.anon_bytes())

        for target in (squeeze, watchdog, sample_anon):
            threading.Thread(target=target, daemon=True).start()
        assert p.stdout is not None
        for raw in p.stdout:
            run.feed(raw.decode(errors="replace"))
        rc = p.wait()
        stop.set()
        killed = cg.killed_by_oom(rc)
        peak = cg.peak_bytes()
    finally:
        stop.set()
        cg.cleanup()
        thermal.unlink(missing_ok=True)
    held = run.ticks_before_eviction()
    hours = held * a.bar_seconds / 3600
    return {"config": mode, "market": "ticks" if tick else "full-mantissa", "killed": killed,
            "killed_at_s": run.seconds if killed else None, "returncode": rc,
            "timed_out": rc == -9 and not killed, "ticks": run.ticks, "ticks_held": held,
            "trading_hours": hours, "peak_memory_bytes": anon[0] or None,
            "peak_charged_bytes": peak, "memory_limit_bytes": limit,
            "slack": slack(limit, anon[0] or None) if limit else None,
            "throughput_ticks_s": run.ticks / run.seconds if run.seconds else None,
            "p99_batch_ms_before": p99_in(run, 0, sq0), "p99_batch_ms_squeeze": p99_in(run, sq0, sq1),
            "p99_batch_ms_after": p99_in(run, sq1, 1e9),
            "recovery_seconds": recovery_seconds(run, sq0, a.objective_ms) if a.objective_ms else None,
            "final_batch_size": run.intervals[-1]["batch_size"] if run.intervals else None,
            "_run": run, "_positions": positions}  # fmt: skip


def reference_key(a: argparse.Namespace, tick: float) -> str:
    """Everything the reference's positions and PnL depend on (not its length)."""
    h = hashlib.sha256(Path(a.engine).read_bytes())
    h.update(json.dumps([a.seed, a.symbols, tick, engine_options(a)]).encode())
    return h.hexdigest()[:16]


def reference(a: argparse.Namespace, bars: int, tick: float, work: Path) -> tuple[Run, I8, bool]:
    """The unlimited float64 run over at least ``bars`` bars, from the cache when it holds enough."""
    key = reference_key(a, tick)
    cache = RESULTS / f"engine-reference-{key}.npz"
    if cache.exists():
        with np.load(cache) as z:
            if int(z["bars"]) >= bars:
                ref = Run()
                ref.pnl_by_bar = dict(zip(z["mark_bars"].tolist(), z["mark_pnl"].tolist(), strict=True))
                return ref, z["positions"], True
    log(a, f"reference: unlimited float64 over {bars} bars (cached afterwards as {cache.name})")
    row = run_one(a, "float64", bars, None, tick, work / "reference")
    ref, pos = row["_run"], read_positions(row["_positions"], a.symbols)
    RESULTS.mkdir(exist_ok=True)
    marks = sorted(ref.pnl_by_bar.items())
    np.savez(cache, bars=ref.ticks, positions=pos, mark_bars=np.array([b for b, _ in marks]),
             mark_pnl=np.array([v for _, v in marks]))  # fmt: skip
    return ref, pos, False


def ratio(x: float | None, y: float | None) -> float | None:
    return None if x is None or not y else x / y


def targets(rows: dict[str, dict[str, Any]], a: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per target and per validity check, each with its value and ``met``."""
    f, q = rows["float64"], rows["qas"]
    fq = q["_run"]
    hours = ratio(q["trading_hours"], f["trading_hours"])
    t_same = fq.seconds_to(f["ticks"])  # qas's time over the bars float64 traded
    thr = ratio(f["ticks"] / t_same if t_same else None, f["throughput_ticks_s"])
    out_q = p99_in(fq, 0, a.squeeze_at) , p99_in(fq, a.squeeze_at + a.squeeze_seconds, f["_run"].seconds)
    out_f = p99_in(f["_run"], 0, a.squeeze_at), p99_in(f["_run"], a.squeeze_at + a.squeeze_seconds, 1e9)
    p99_q = max((x for x in out_q if x is not None), default=None)
    p99_f = max((x for x in out_f if x is not None), default=None)
    p99_ratio = ratio(p99_q, p99_f)

    def row(name: str, value: Any, met: bool, kind: str = "target") -> dict[str, Any]:
        return {"type": kind, "name": name, "value": value, "met": bool(met)}

    return [
        row("limit binds: float64 is OOM-killed", f["killed"], f["killed"], "validity"),
        row("squeeze binds: float64 p99 under the objective before it, over it in it",
            [f["p99_batch_ms_before"], f["p99_batch_ms_squeeze"]],
            (f["p99_batch_ms_before"] or 1e9) <= a.objective_ms < (f["p99_batch_ms_squeeze"] or 0),
            "validity"),
        row("qas OOM-killed: never", q["killed"], not q["killed"] and not q["timed_out"]),
        row("trading hours vs float64 >= 4x", hours, hours is not None and hours >= 4),
        row("positions equal to the reference: 100 %", q["positions_match_ratio"],
            q["positions_match_ratio"] == 1.0),
        row("PnL difference < 0.1 bp", q["pnl_diff_bp"],
            q["pnl_diff_bp"] is not None and q["pnl_diff_bp"] < 0.1),
        row("throughput vs float64's over the same bars >= 0.95x", thr, thr is not None and thr >= 0.95),
        row("p99 outside the squeeze vs float64's <= 1.05x", p99_ratio,
            p99_ratio is not None and p99_ratio <= 1.05),
        row("p99 back under the objective <= 3 s after the squeeze starts", q["recovery_seconds"],
            q["recovery_seconds"] is not None and q["recovery_seconds"] <= 3),
        row("slack <= 15 %", q["slack"], q["slack"] is not None and q["slack"] <= 0.15),
    ]


def bench_market(a: argparse.Namespace, tick: float, work: Path) -> tuple[dict[str, Any], list[Any]]:
    log(a, f"market: quotes on a {tick:g} grid" if tick else "market: full-mantissa prices")
    rows: dict[str, dict[str, Any]] = {}
    f = run_one(a, "float64", a.float64_bars, a.limit_bytes, tick, work / "float64")
    rows["float64"] = f
    log(a, f"float64: {'killed' if f['killed'] else 'not killed'} after {f['ticks']} bars, "
           f"{f['_run'].seconds:.1f} s")  # fmt: skip
    if a.objective_ms is None:  # binds only under the squeeze: above float64's p99 outside it
        a.objective_ms = round(OBJECTIVE_OVER_FLOAT64 * (f["p99_batch_ms_before"] or 10.0), 1)
        log(a, f"latency objective {a.objective_ms} ms: {OBJECTIVE_OVER_FLOAT64}x float64's p99 before the squeeze")
    f["recovery_seconds"] = recovery_seconds(f["_run"], a.squeeze_at, a.objective_ms)
    bars = a.max_ratio * f["ticks"] if f["killed"] else f["ticks"]
    # the reference needs no timing: it runs beside float16-naive (whose speed is no target),
    # never beside qas
    box: dict[str, Any] = {}

    def compute_reference() -> None:
        try:
            box["r"] = reference(a, max(bars, f["ticks"]), tick, work)
        except BaseException as exc:  # re-raised in the bench's thread below
            box["error"] = exc

    worker = threading.Thread(target=compute_reference)
    worker.start()
    for mode in ("float16-naive", "qas"):
        if mode == "qas":
            worker.join()
        log(a, f"{mode}: up to {bars} bars")
        rows[mode] = run_one(a, mode, bars, a.limit_bytes, tick, work / mode)
        log(a, f"{mode}: {rows[mode]['ticks']} bars, {rows[mode]['_run'].seconds:.1f} s")
    if "error" in box:
        raise box["error"]
    ref, ref_pos, cached = box["r"]
    for row in rows.values():
        row["positions_match_ratio"] = positions_match_ratio(read_positions(row["_positions"], a.symbols), ref_pos)
        row["pnl_diff_bp"] = pnl_diff_bp(row["_run"], ref)
        row["reference_cached"] = cached
    return rows, targets(rows, a)


COLS = ("killed", "killed_at_s", "ticks", "ticks_held", "trading_hours", "throughput_ticks_s",
        "peak_memory_bytes", "peak_charged_bytes", "slack", "p99_batch_ms_before", "p99_batch_ms_squeeze",
        "p99_batch_ms_after", "recovery_seconds", "final_batch_size", "positions_match_ratio",
        "pnl_diff_bp")  # fmt: skip


def fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def print_table(rows: dict[str, dict[str, Any]], checks: list[dict[str, Any]]) -> None:
    print(f"   {'':24}" + "".join(f"{m:>16}" for m in MODES))
    for c in COLS:
        print(f"   {c:24}" + "".join(f"{fmt(rows[m][c]):>16}" for m in MODES))
    for t in checks:
        label = "valid" if t["type"] == "validity" and t["met"] else "INVALID" if t["type"] == "validity" else "met" if t["met"] else "NOT met"
        print(f"   [{label}] {t['name']}: {fmt(t['value']) if not isinstance(t['value'], list) else ', '.join(map(fmt, t['value']))}")


def plot(rows: dict[str, dict[str, Any]], a: argparse.Namespace, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    for name, row in rows.items():
        iv = row["_run"].intervals
        t = [r["t"] for r in iv]
        axes[0].plot(t, [r["rss_bytes"] / 2**20 for r in iv], label=name)
        axes[1].plot(t, [r["ticks"] / 1e3 for r in iv], label=name)
        axes[2].plot(t, [r["p99_batch_ms"] for r in iv], label=name)
    axes[0].axhline(a.limit_bytes / 2**20, color="k", ls="--", label="memory limit")
    axes[2].axhline(a.objective_ms, color="k", ls=":", label="latency objective")
    for ax in axes:
        ax.axvspan(a.squeeze_at, a.squeeze_at + a.squeeze_seconds, color="orange", alpha=0.2,
                   label="CPU squeeze (1/4 core)")  # fmt: skip
    axes[0].set_ylabel("resident memory, MiB")
    axes[1].set_ylabel("bars traded, thousands")
    axes[2].set_ylabel("p99 batch latency, ms")
    axes[2].set_yscale("log")
    axes[-1].set_xlabel("seconds since start")
    axes[0].legend(loc="upper left")
    axes[2].legend(loc="upper right")
    fig.suptitle(f"Example engine under a {a.limit_bytes / 2**20:.0f} MiB cgroup, {a.cores:g} core, "
                 f"{a.symbols} symbols: float64 vs float16-naive vs qas")  # fmt: skip
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--engine", default="examples/trading_engine.py")
    p.add_argument("--limit-bytes", type=int, default=140 * 1024 * 1024)
    p.add_argument("--cores", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--symbols", type=int, default=100)
    p.add_argument("--batch", type=int, default=4096, help="the engine's configured batch (items)")
    p.add_argument("--objective-ms", type=float, default=None,
                   help=f"the engine's latency objective (default: {OBJECTIVE_OVER_FLOAT64}x float64's "
                   "p99 before the squeeze, measured in the same run)")
    p.add_argument("--squeeze-at", type=float, default=8.0, help="seconds after each start")
    p.add_argument("--squeeze-seconds", type=float, default=8.0)
    p.add_argument("--max-ratio", type=int, default=8, help="runs end at this many times float64's bars")
    p.add_argument("--float64-bars", type=int, default=2_000_000, help="float64's cap if never killed")
    p.add_argument("--run-timeout", type=float, default=400.0, help="seconds before a run is stopped")
    p.add_argument("--bar-seconds", type=float, default=60.0, help="trading time one bar stands for")
    p.add_argument("--interval-seconds", type=float, default=0.5)
    p.add_argument("--feedback-interval", type=float, default=0.5)
    p.add_argument("--full-mantissa", action="store_true", help="also run the unrounded market")
    p.add_argument("--json", action="store_true")
    return p


def main(quick: bool = False, argv: list[str] | None = None) -> None:
    a = parser().parse_args(argv if argv is not None else [])
    started = time.monotonic()
    markets = [0.01] + ([0.0] if a.full_mantissa else [])
    png = RESULTS / "engine.png"
    with tempfile.TemporaryDirectory(prefix="qas-bench-engine-") as tmp:
        for tick in markets:
            rows, checks = bench_market(a, tick, Path(tmp))
            if a.json:
                for row in rows.values():
                    print(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}))
                for t in checks:
                    print(json.dumps({**t, "market": rows["qas"]["market"]}))
            else:
                print_table(rows, checks)
            if tick and plot(rows, a, png):
                log(a, f"plot: {png}")
    log(a, f"bench engine took {time.monotonic() - started:.0f} s")
