"""glibc malloc tuning: for a long-running service that now and then reads a large record, and
for an engine whose store frees the float64 blocks it compresses.

glibc serves a request above its mmap threshold (128 KiB at start) with its own mapping and
returns it on free; but freeing such a chunk raises the threshold to the chunk's size (up to
32 MiB), and the trim threshold to twice that. After one 2 MB record (a poison message, a
backlog fetch after a broker fault) every buffer up to 2 MB comes from the heap, whose top is
given back only when 4 MB are free there: the resident size steps up and stays. Setting both
thresholds pins them (glibc then stops adjusting), so large buffers keep going back to the OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def pin_malloc_thresholds(mmap_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap and trim thresholds; False where there is no glibc mallopt (macOS,
    musl), which changes nothing else."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_bytes)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * mmap_bytes)
    )


def release_free_heap() -> bool:
    """Give the C heap's free pages back to the kernel (glibc ``malloc_trim``); False if absent.

    Blocks the store compresses or drops are freed to the allocator, which may keep the pages:
    the process's use would not fall, and the controller would read the freed store bytes as the
    engine's own growth and lower the budget again for nothing.
    """
    name = ctypes.util.find_library("c")
    if os.name != "posix" or name is None:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(trim(0))
