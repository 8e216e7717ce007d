"""What the engine's compute reads from the decision in force: its batch size and precision.

``BatchSizer`` cuts pending work into batches of the decided size, bounded by the engine's own
minimum and maximum (the decider's cost model, shared/cost_model.py, chooses the size; the
engine's configured size is where it starts and the most the decider gives it). ``PrecisionContext`` names the numpy dtype to compute in. Compute precision is separate
from storage precision: a decision's tier says how far down the storage ladder the engine's store
may go, not how today's signal is computed. The engine computes in float64 whatever the decided
storage tier, including the 32-bit and the 16/8-bit block tiers. Two exceptions, both asked for
by the engine itself:

- the 80-bit (top) tier computes in ``numpy.longdouble`` unless the engine turns that off
  (``extended=False``);
- a decided tier of 32 bits or less computes in float32 only where the engine declared an error
  budget for its compute (``error_budget``, a relative error) that float32's rounding
  (``FLOAT32_UNIT_ROUNDOFF``, 2**-24) fits in. Without one (the default, 0) it stays float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.engine.options import ClientOptionError
from shared.messages import ScalingDecision
from shared.tiers import tier

FLOAT32_UNIT_ROUNDOFF = 2.0**-24  # float32's relative rounding error (round to nearest)


@dataclass
class BatchSizer:
    """Items per batch: the decision's ``batch_size`` within [minimum, maximum].

    ``configured``: the engine's own batch size, declared to the decider in its reports (None:
    not declared; the decider's memory plan is then the ceiling).
    """

    size: int = 256
    minimum: int = 1
    maximum: int = 1 << 20
    configured: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ClientOptionError(f"batch sizes: need 1 <= minimum {self.minimum} <= maximum "
                             f"{self.maximum}")  # fmt: skip
        if self.configured is not None and not self.minimum <= self.configured <= self.maximum:
            raise ClientOptionError(f"batch_size {self.configured} is outside [{self.minimum}, "
                             f"{self.maximum}]")  # fmt: skip
        self.size = min(self.maximum, max(self.minimum, self.size))

    @classmethod
    def declared(cls, configured: int | None, minimum: int = 1,
                 maximum: int | None = None) -> BatchSizer:  # fmt: skip
        """The engine's declared sizes: it starts at ``configured`` (default 256)."""
        top = (1 << 20) if maximum is None else int(maximum)
        start = 256 if configured is None else int(configured)
        return cls(size=start, minimum=int(minimum), maximum=top,
                   configured=None if configured is None else int(configured))  # fmt: skip

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
    """The decided storage tier and the dtype the engine's compute uses (see the module).

    ``error_budget`` is the relative error the engine accepts in its own compute (0: none, so it
    never computes below float64); ``extended`` lets the top tier compute in ``longdouble``.
    """

    bits: int = 64
    error_budget: float = 0.0
    extended: bool = True

    def adopt(self, d: ScalingDecision) -> np.dtype[Any]:
        self.bits = int(d.precision_bits)
        return self.dtype

    @property
    def allows_float32(self) -> bool:
        """The engine's declared error budget covers float32 rounding."""
        return self.error_budget >= FLOAT32_UNIT_ROUNDOFF

    @property
    def dtype(self) -> np.dtype[Any]:
        if self.bits >= 80 and self.extended:
            return np.dtype(np.longdouble)
        if self.bits <= 32 and self.allows_float32:
            return np.dtype(np.float32)
        return np.dtype(np.float64)

    @property
    def name(self) -> str:
        """The decided storage tier's name (not the compute dtype's)."""
        return tier(self.bits).name

    def asarray(self, values: npt.ArrayLike) -> npt.NDArray[Any]:
        """``values`` in the compute dtype (no copy when already there)."""
        return np.asarray(values, dtype=self.dtype)
