"""Codecs: encode throughput per tier against numpy.copyto of the same bytes; bytes per value.

Throughput is source float64 bytes per second, best of 7 runs, on 4 Mi values (32 MiB): the
same array for every row, so the ratios to copyto (the machine's memcpy) compare like with like.
numpy's astype(float16) is shown as the obvious baseline (which breaks prices: 43 210.55 -> 43 200).
Target: >= 50 % of copyto for the 16- and 8-bit tiers. The block tiers run the fused C encoder
(shared/_blockcodec.c); its portable C build and the numpy reference are timed beside it.
Decode (back to float64, what a pool read does) is timed too: output bytes per second.
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import table
from shared.codecs import KERNEL, _encode_blocks, decode, encode, measured_error, nominal_bytes
from shared.precision import platform_top_bits
from tests.support.data import sp500_close, tick_like


def _best(fn, runs: int = 7) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(quick: bool = False) -> None:
    n = 1 << (20 if quick else 22)
    x = np.random.default_rng(1).normal(43_210.55, 50.0, n)
    dst = np.empty_like(x)
    t_copy = _best(lambda: np.copyto(dst, x))
    rows: list[list[object]] = [
        ["numpy.copyto (memcpy)", x.nbytes / t_copy / 1e9, "1.00", "", 8.0, "-"]
    ]
    t16 = _best(lambda: x.astype(np.float16))
    rows.append(["numpy astype(float16) (baseline)", x.nbytes / t16 / 1e9, f"{t_copy / t16:.2f}", "", 2.0,
                 f"{np.max(np.abs(x.astype(np.float16) - x) / x):.1e}"])  # fmt: skip
    real = sp500_close()
    for bits in (platform_top_bits(), 64, 32, 16, 8):
        t = _best(lambda b=bits: encode(x, b))
        stored = encode(x, bits)
        td = _best(lambda e=stored: decode(e))
        enc = encode(real, bits)
        name = f"QAS {bits}-bit" + (f" ({KERNEL})" if bits in (16, 8) else "")
        rows.append([name, x.nbytes / t / 1e9, f"{t_copy / t:.2f}", x.nbytes / td / 1e9,
                     enc.nbytes / real.size, f"{measured_error(real, enc)[1]:.1e}"])  # fmt: skip
    for kernel in ("portable", "numpy") if KERNEL != "numpy" else ():
        t = _best(lambda k=kernel: _encode_blocks(x, 16, k))
        rows.append([f"QAS 16-bit ({kernel})", x.nbytes / t / 1e9, f"{t_copy / t:.2f}", "", "", ""])
    print(table(["encode", "GB/s", "vs copyto", "decode GB/s", "bytes/value (S&P 500)", "max rel error"], rows))
    ticks = tick_like()
    for bits, target in ((16, 1e-4), (8, 1e-2)):
        enc = encode(ticks, bits)
        rel = measured_error(ticks, enc)[1]
        print(f"   tick-like series, {bits}-bit: max relative error {rel:.2e} (target {target:g}), "
              f"{enc.nbytes / ticks.size:.3f} bytes/value (nominal {nominal_bytes(bits):g})")  # fmt: skip
