"""What numpy.longdouble is on this platform: the seed's "81-bit" top tier, named for what it is.

x87 extended on x86-64 Linux keeps 10 significant bytes in 16; IEEE quad on aarch64 Linux (a
Raspberry Pi) uses all 16 and is computed in software; macOS ARM64 and Windows give plain
float64, where the top tier is float64 itself (the row's name stays, the ladder stops at 64).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LongDoubleFormat(NamedTuple):
    name: str  # what the top tier really is on this platform
    tier_name: str  # its name in the tier registry, decisions and metrics
    significant_bytes: int  # the bytes of one numpy.longdouble that carry its value
    software: bool  # computed by a software library, not by the FPU


def longdouble_format(nmant: int | None = None, itemsize: int | None = None) -> LongDoubleFormat:
    """The platform's numpy.longdouble (arguments: another platform's, for tests)."""
    nmant = np.finfo(np.longdouble).nmant if nmant is None else nmant
    itemsize = np.dtype(np.longdouble).itemsize if itemsize is None else itemsize
    if nmant <= 52:
        return LongDoubleFormat("float64", "extended80", 8, False)
    if nmant == 63:  # x87: 8 mantissa bytes, then sign and exponent; the rest is padding
        return LongDoubleFormat("x87 extended (80-bit)", "extended80", 10, False)
    if nmant == 112:  # the sign and exponent sit in the last two of the 16 bytes
        return LongDoubleFormat("IEEE quad (128-bit)", "quad128", itemsize, True)
    # double-double (POWER) or anything else wider: keeping every byte is always exact
    return LongDoubleFormat(f"longdouble ({nmant}-bit mantissa)", "longdouble", itemsize, True)
