"""services/malloc.py: after a 2 MB buffer is freed, glibc's dynamic mmap threshold would keep later
large buffers on the heap and the resident size would ratchet up; pinned, it does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = """
import random, sys
from services.malloc import pin_malloc_thresholds
pinned = pin_malloc_thresholds() if sys.argv[1] == "pin" else False
def rss():
    import os
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
rng, keep, start = random.Random(1), [], rss()
for _ in range(30):
    big = bytearray(2_000_000); del big  # one large record, freed
    bufs = [bytearray(rng.randint(150_000, 1_000_000)) for _ in range(8)]  # fetch buffers
    keep.append([object() for _ in range(200)])  # small objects living in between
    del bufs
    keep = keep[-10:]
print(pinned, rss() - start)
"""


def _grown(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", WORKLOAD, mode], capture_output=True, text=True,
                         cwd=ROOT, check=True, timeout=60).stdout.split()  # fmt: skip
    return out[0] == "True", int(out[1])


def test_pinned_thresholds_keep_large_buffers_from_ratcheting_the_resident_size() -> None:
    pinned, grown_pinned = _grown("pin")
    assert pinned  # glibc here: mallopt exists and took both settings
    _, grown_default = _grown("default")
    assert grown_pinned < 1 << 20  # the buffers went back to the OS
    assert grown_default > grown_pinned + (2 << 20)  # without it, megabytes stay resident
