"""Pool: the seed's Raspberry Pi runtime claim (2-3 h -> 8-12 h, about 4x), made measurable.

A real price stream (the S&P 500 daily closes, replayed 20 times: 100 620 ticks) is written,
256 ticks at a time, into a store with a fixed memory cap equal to a quarter of what the whole
stream takes as float64. The plain float64 store is full after a quarter of the stream. The QAS
pool (decided tier 16-bit for normal trading) tags each block with a value: the percentile rank
of the block's absolute return among the blocks seen so far (a stand-in for the engine's profit
potential); blocks ranked at or above the high-value threshold are kept at the top tier. Over
budget the pool downgrades the lowest-value, oldest blocks. "Reached the cap" means it had to
evict or refuse. It runs twice: high-value = the top 20 % of blocks (threshold 0.8) and the top
10 % (0.9), because top-tier data costs 10 bytes a value and decides how far the rest can go.
Target: QAS never reaches the cap, every high-value block keeps full precision.
"""

from __future__ import annotations

import bisect

import numpy as np

from bench.common import table
from services.applier.pool import TieredPool
from shared.codecs import decode
from shared.precision import platform_top_bits
from tests.support.data import sp500_close

BLOCK = 256


def _run(stream: np.ndarray, cap: int, threshold: float) -> dict[str, object]:  # type: ignore[type-arg]
    pool = TieredPool(budget_bytes=cap, tier=16, high_value_threshold=threshold)
    seen: list[float] = []
    written, reached, high_written = 0, None, 0
    for start in range(0, stream.size - BLOCK + 1, BLOCK):
        block = stream[start : start + BLOCK]
        move = abs(float(block[-1] / block[0] - 1.0))
        rank = bisect.bisect_left(seen, move) / max(1, len(seen))
        bisect.insort(seen, move)
        high_written += rank >= threshold
        ok = pool.write("spx", block, value=rank, now=float(start))
        if (not ok or pool.evicted) and reached is None:
            reached = written
        written += BLOCK if ok else 0
    blocks = pool.blocks("spx")
    starts = range(0, stream.size - BLOCK + 1, BLOCK)
    measured = max(
        (float(np.max(np.abs(decode(b.enc) - stream[starts[b.seq - 1] : starts[b.seq - 1] + BLOCK])
                      / stream[starts[b.seq - 1] : starts[b.seq - 1] + BLOCK]))
         for b in blocks if b.enc.bits in (8, 16)),
        default=0.0,
    )  # fmt: skip
    top = platform_top_bits()
    high = [b for b in blocks if b.high_value]
    return {
        "fit": reached if reached is not None else written,
        "reached": reached,
        "high": len(high),
        "high_written": high_written,
        "high_full": all(b.enc.bits == top for b in high),
        "measured": measured,
        "bound": max((b.enc.rel_error for b in blocks if b.enc.bits in (8, 16)), default=0.0),
        "evicted": pool.evicted,
        "tiers": {bits: sum(1 for b in blocks if b.enc.bits == bits) for bits in (top, 16, 8)},
    }


def main(quick: bool = False) -> None:
    stream = np.tile(sp500_close(), 5 if quick else 20)
    cap = stream.nbytes // 4
    float64_fit = cap // 8
    rows: list[list[object]] = [
        ["float64 (baseline)", "-", cap, float64_fit, "1.0x", "yes, at 25 %"]
    ]
    notes = []
    for share, threshold in (("top 20 %", 0.8), ("top 10 %", 0.9)):
        r = _run(stream, cap, threshold)
        fit = int(r["fit"])  # type: ignore[call-overload]
        rows.append(["QAS tiered pool", share, cap, fit, f"{fit / float64_fit:.1f}x",
                     "no" if r["reached"] is None else f"yes, at {100 * fit / stream.size:.0f} %"])  # fmt: skip
        notes.append(
            f"   {share}: high-value blocks kept {r['high']} of {r['high_written']}, all at full precision: "
            f"{r['high_full']}; blocks by tier {r['tiers']}; evicted {r['evicted']}; downgraded data max "
            f"relative error {r['measured']:.2e} measured, {r['bound']:.2e} published"
        )
    print(
        f"   stream: S&P 500 closes x{stream.size // sp500_close().size} = {stream.size} ticks; cap = 1/4 of it as float64"
    )
    print(table(["store", "high-value share", "cap bytes", "ticks held before the cap", "vs float64",
                 "reached the cap"], rows))  # fmt: skip
    print("\n".join(notes))
