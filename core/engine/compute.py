"""What the engine's compute reads from the decision in force: its batch size and precision.

``BatchSizer`` cuts pending work into batches of the decided size (bounded by the engine's own
limits). ``PrecisionContext`` names the numpy dtype to compute in for the decided tier: the
80-bit tier computes in ``numpy.longdouble``, 64 in float64, and 32 and the 16/8-bit block tiers
in float32 (the block tiers are storage codecs with a published error bound; numpy has no
arithmetic on them, so their values are computed at 32 bits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.messages import ScalingDecision
from shared.tiers import tier

_DTYPES: dict[int, type[np.floating[Any]]] = {80: np.longdouble, 64: np.float64, 32: np.float32}


@dataclass
class BatchSizer:
    """Items per batch: the decision's ``batch_size`` within [minimum, maximum]."""

    size: int = 256
    minimum: int = 1
    maximum: int = 1 << 20

    def adopt(self, d: ScalingDecision) -> int:
        self.size = min(self.maximum, max(self.minimum, d.batch_size))
        return self.size

    def ready(self, pending: int) -> bool:
        """Enough work is queued for one batch."""
        return pending >= self.size

    def split(self, pending: int) -> list[int]:
        """Sizes of the batches ``pending`` items make (the last may be short)."""
        full, rest = divmod(max(0, pending), self.size)
        return [self.size] * full + ([rest] if rest else [])


@dataclass
class PrecisionContext:
    """The decided tier and the dtype the engine's compute uses for it."""

    bits: int = 64

    def adopt(self, d: ScalingDecision) -> np.dtype[Any]:
        self.bits = int(d.precision_bits)
        return self.dtype

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(_DTYPES.get(self.bits, np.float32))

    @property
    def name(self) -> str:
        return tier(self.bits).name

    def asarray(self, values: npt.ArrayLike) -> npt.NDArray[Any]:
        """``values`` in the compute dtype (no copy when already there)."""
        return np.asarray(values, dtype=self.dtype)
