"""Top tier: what the platform's longdouble costs against float64, encoded and computed on.

On x86-64 the top tier is x87 extended, computed by the FPU; on aarch64 Linux (a Raspberry Pi)
it is IEEE quad, computed in software. Both sides are measured in the same run on the same
values: read the ratios (under qemu absolute times mean nothing, the ratio still does).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import numpy as np

from bench.common import median, table
from shared.codecs import decode, encode
from shared.longdouble import longdouble_format


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return median(times)


def measure(n: int = 100_000, repeat: int = 5) -> list[dict[str, object]]:
    x = np.cumsum(np.random.default_rng(7).normal(0, 0.5, n)) + 4_000.0
    ld = x.astype(np.longdouble)
    rows: list[dict[str, object]] = []
    pairs: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("encode", lambda: encode(x, 64), lambda: encode(x, 80)),
        ("decode", lambda: decode(encode(x, 64)), lambda: decode(encode(x, 80))),
        ("returns' variance", lambda: np.var(np.diff(x)), lambda: np.var(np.diff(ld))),
        ("sum of squares", lambda: np.sum(x * x), lambda: np.sum(ld * ld)),
    ]
    for what, f64, top in pairs:
        a, b = _best(f64, repeat), _best(top, repeat)
        rows.append({"operation": what, "float64_s": a, "top_s": b, "ratio": b / a if a else None})
    return rows


def main(quick: bool = False, json_out: bool = False) -> None:
    fmt = longdouble_format()
    rows = measure(n=20_000 if quick else 100_000)
    if json_out:
        for r in rows:
            print(json.dumps({"top_tier": fmt.tier_name, "software": fmt.software, **r}))
        return
    print(f"   top tier: {fmt.name} ({fmt.tier_name}, {fmt.significant_bytes} bytes kept, "
          f"{'software' if fmt.software else 'hardware'})")  # fmt: skip
    print(table(["operation", "float64 s", "top tier s", "top / float64"],
                [[r["operation"], r["float64_s"], r["top_s"], r["ratio"]] for r in rows]))  # fmt: skip


if __name__ == "__main__":
    main(json_out="--json" in sys.argv)
