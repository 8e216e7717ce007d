"""Footprint: `qas run`'s resident size beside its imported libraries' own, and its import cost.

A Raspberry Pi Zero 2 W has 512 MB for everything; what QAS takes is what the engine does not
get. Every figure is measured in this run, in fresh child processes of this interpreter (under
qemu for make test-arm: resident sizes compare across platforms, times do not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil

from bench.common import table

LIBRARIES = "numpy, msgspec, prometheus_client, aiokafka, psutil"
HEAVY = ("matplotlib", "rich", "pynvml", "kafka")  # what a Pi should not load unless it needs it
GOAL_MIB = 10.0  # qas run may hold at most this much above its libraries' own footprint


def _child(code: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=300).stdout  # fmt: skip
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


_RSS = ("import json, sys, time, psutil; t = time.perf_counter(); {imports}; "
        "t = time.perf_counter() - t; "
        "print(json.dumps({{'rss': psutil.Process().memory_info().rss, 'seconds': t, "
        "'heavy': sorted(m for m in {heavy!r} if m in sys.modules)}}))")  # fmt: skip


def measure(seconds: float = 4.0) -> dict[str, object]:
    bare = _child(_RSS.format(imports="pass", heavy=HEAVY))
    libs = _child(_RSS.format(imports=f"import {LIBRARIES}", heavy=HEAVY))
    cli = _child(_RSS.format(imports="import app.cli", heavy=HEAVY))
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "run", "--duration", str(seconds + 3), "--json",
         "--no-metrics"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(seconds)
        run_rss = psutil.Process(proc.pid).memory_info().rss
    finally:
        proc.wait(timeout=120)
    mib = 1 << 20
    return {
        "machine": os.uname().machine,
        "python_rss_mib": int(bare["rss"]) / mib,  # type: ignore[call-overload]
        "libraries_rss_mib": int(libs["rss"]) / mib,  # type: ignore[call-overload]
        "cli_import_rss_mib": int(cli["rss"]) / mib,  # type: ignore[call-overload]
        "run_rss_mib": run_rss / mib,
        "libraries_import_s": libs["seconds"],
        "cli_import_s": cli["seconds"],
        "import_ratio_to_libraries": float(cli["seconds"]) / max(1e-9, float(libs["seconds"])),  # type: ignore[arg-type]
        "heavy_loaded_by_cli_import": cli["heavy"],
    }


def targets(m: dict[str, object]) -> list[dict[str, object]]:
    over = float(m["run_rss_mib"]) - float(m["libraries_rss_mib"])  # type: ignore[arg-type]
    return [
        {"target": "qas run RSS above its libraries' own", "value_mib": round(over, 1),
         "goal_mib": GOAL_MIB, "met": over <= GOAL_MIB},
        {"target": "no matplotlib, rich or NVML at import of the CLI",
         "value": m["heavy_loaded_by_cli_import"], "met": not m["heavy_loaded_by_cli_import"]},
    ]  # fmt: skip


def main(quick: bool = False, json_out: bool = False) -> None:
    m = measure(seconds=3.0 if quick else 4.0)
    rows = targets(m)
    if json_out:
        print(json.dumps(m))
        for r in rows:
            print(json.dumps(r))
        return
    print(table(["what", "RSS MiB", "import s"], [
        ["python alone", m["python_rss_mib"], ""],
        [f"import {LIBRARIES}", m["libraries_rss_mib"], m["libraries_import_s"]],
        ["import app.cli (qas)", m["cli_import_rss_mib"], m["cli_import_s"]],
        ["qas run, after 4 s", m["run_rss_mib"], ""],
    ]))  # fmt: skip
    print(f"   machine {m['machine']}")
    for r in rows:
        print(f"   {'met    ' if r['met'] else 'NOT met'}  {r['target']}: "
              f"{r.get('value_mib', r.get('value'))}")  # fmt: skip


if __name__ == "__main__":
    main(json_out="--json" in sys.argv)
