"""engine-soak: does the engine client's own memory grow with run time?

`python -m bench engine-soak [--minutes 10] [--json]` runs the example engine in qas mode (the
client, with the QAS services in-process, on the embedded bus) for ``--minutes``, with
``--trace-client``: every ``--trace-seconds`` the engine reports tracemalloc's live bytes by
owner. An allocation belongs to the innermost frame of ours that made it: the store (the history
the engine asked to keep: core/engine/store.py, the pool, the codecs), the engine (examples/), or
the client (everything else of core/, services/, shared/, app/: decisions followed, feedback
reports, the embedded decider, observer and applier). The client's slope (least squares over the
samples after the first fifth) is the target; the RSS slope and the store's (its history grows
by design: the run has no memory limit) are printed beside it, for information.
tracemalloc slows the engine several times: this measures memory, not speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

import numpy as np

TARGET_MB_PER_HOUR = 1.0


def slope_mb_per_hour(t: list[float], y: list[float]) -> float | None:
    """Least-squares slope of ``y`` (bytes) against ``t`` (s) after the first fifth, in MB/h."""
    start = t[0] + (t[-1] - t[0]) / 5 if t else 0.0
    pts = [(a, b) for a, b in zip(t, y, strict=True) if a >= start]
    if len(pts) < 3:
        return None
    ts, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    return float(np.polyfit(ts, ys, 1)[0] * 3600 / 1e6)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench engine-soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--trace-seconds", type=float, default=10.0)
    p.add_argument("--symbols", type=int, default=20)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv if argv is not None else [])
    argv_engine = [sys.executable, "examples/trading_engine.py", "--mode", "qas", "--json",
                   "--symbols", str(a.symbols), "--duration", str(a.minutes * 60),
                   "--trace-client", str(a.trace_seconds)]  # fmt: skip
    traces: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    out = sys.stderr if a.json else sys.stdout
    with subprocess.Popen(argv_engine, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("type") == "trace":
                traces.append(rec)
                print(f"   {rec['t']:7.0f} s  client {rec['client_traced_bytes'] / 1e6:7.2f} MB  "
                      f"store {rec['store_traced_bytes'] / 1e6:7.2f} MB  RSS {rec['rss_bytes'] / 1e6:7.1f} MB",
                      file=out, flush=True)  # fmt: skip
            elif rec.get("type") == "summary":
                summary = rec
    t = [float(r["t"]) for r in traces]
    client = slope_mb_per_hour(t, [float(r["client_traced_bytes"]) for r in traces])
    rss = slope_mb_per_hour(t, [float(r["rss_bytes"]) for r in traces])
    store = slope_mb_per_hour(t, [float(r["history_bytes"]) for r in traces])
    row = {"bench": "engine-soak", "minutes": a.minutes, "samples": len(traces),
           "ticks": summary.get("ticks"), "feedback_reports": summary.get("feedback_reports"),
           "adopted": summary.get("adopted"), "client_slope_mb_per_hour": client,
           "rss_slope_mb_per_hour": rss, "store_slope_mb_per_hour": store,
           "measured_by": "tracemalloc, by the innermost frame of ours"}  # fmt: skip
    met = client is not None and client < TARGET_MB_PER_HOUR
    target = {"type": "target", "name": f"client memory slope < {TARGET_MB_PER_HOUR:g} MB/h",
              "value": client, "met": met}  # fmt: skip
    if a.json:
        print(json.dumps(row))
        print(json.dumps(target))
        return
    print(f"   client (tracemalloc) slope: {client if client is None else f'{client:.3f}'} MB/h; "
          f"for information, RSS {rss if rss is None else f'{rss:.1f}'} MB/h, of which the store's "
          f"history {store if store is None else f'{store:.1f}'} MB/h (kept by design); {len(traces)} samples, {summary.get('feedback_reports')} feedback reports")
    print(f"   [{'met' if met else 'NOT met'}] {target['name']}")
