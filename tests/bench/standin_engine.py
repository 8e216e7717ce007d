"""STAND-IN engine for developing `python -m bench engine` (NOT the real engine of issue 16/15).

Follows bench/engine_contract.py: keeps a growing price history (float64 grows 4x faster than
16-bit), simulates batch latency that rises when the thermal file announces a squeeze (qas halves
its batch then), and prints the contract's JSON lines. Numbers from it say nothing about QAS.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    for a in ("--mode", "--thermal-file"):
        p.add_argument(a, required=True)
    for a in ("--seed", "--symbols", "--memory-limit-bytes"):
        p.add_argument(a, type=int, required=True)
    for a in ("--duration", "--latency-objective-ms"):
        p.add_argument(a, type=float, required=True)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    rng = random.Random(a.seed)
    noise_rng = random.Random(a.seed + 1)
    bytes_per = {"float64": 8, "float16-naive": 2, "qas": 2}[a.mode]
    hist: list[bytearray] = []
    pos = [0] * a.symbols
    pnl = 0.0
    bar = 0
    ticks = 0
    batch = 512
    t0 = time.monotonic()
    while (t := time.monotonic() - t0) < a.duration:
        thermal = float(Path(a.thermal_file).read_text() or 0) if Path(a.thermal_file).exists() else 0.0
        if a.mode == "qas":
            batch = 128 if thermal > 0.5 else 512
            if sum(map(len, hist)) > 0.8 * a.memory_limit_bytes:
                hist = hist[len(hist) // 2:]  # store re-encodes / drops cold history within budget
        bars = []
        for _ in range(10):
            rets = [rng.gauss(0, 1e-3) for _ in range(a.symbols)]
            pnl += sum(x * r * 1e4 for x, r in zip(pos, rets, strict=True)) / a.symbols
            noise = 2e-4 if a.mode == "float16-naive" else 0.0
            pos = [1 if r + noise_rng.gauss(0, noise) > 0 else -1 for r in rets] if noise else [1 if r > 0 else -1 for r in rets]
            bars.append([bar, pos])
            bar += 1
        ticks += 10 * a.symbols
        hist.append(bytearray(b"x" * (200_000 * bytes_per)))
        p99 = (batch / 512) * a.latency_objective_ms * (0.8 if thermal < 0.5 else 3.0)
        rec = {"type": "interval", "t": round(t, 3), "ticks": ticks, "sim_hours": bar / 60,
               "rss_bytes": sum(map(len, hist)), "p99_batch_ms": p99, "batch_size": batch,
               "precision_bits": 64 if a.mode == "float64" else 16, "bars": bars,
               "pnl_bp": pnl, "adopted_decision_ms": None}
        print(json.dumps(rec), flush=True)
        time.sleep(0.1)
    print(json.dumps({"type": "summary", "ticks": ticks, "sim_hours": bar / 60, "pnl_bp": pnl}), flush=True)


if __name__ == "__main__":
    main()
