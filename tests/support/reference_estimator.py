"""Reference: the streaming estimator as it was on deques of Python floats (about 36 KB warmed),
which the numpy rings in shared/market.py must match bit for bit."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from shared.market import (
    HISTORY,
    PE_WEIGHT,
    PROFIT_ALPHA,
    SPACING_GAPS,
    WARMUP,
    WINDOW,
    Estimate,
    Horizon,
    _rank,
    _shrink,
    _warmup,
    horizon,
    permutation_entropy,
)


@dataclass
class StreamingEstimator:
    """The deque estimator, as shipped before the rings.

    Give each price its time (``update(price, when)``) and the horizon follows the bar spacing
    as in ``horizon``; without times it is counts only (or the ``window``/``history`` given)."""

    window: int = WINDOW
    history: int = HISTORY
    _last: float | None = None
    _returns: deque[float] = field(default_factory=deque)
    _vols: deque[float] = field(default_factory=deque)
    _trends: deque[float] = field(default_factory=deque)
    _profit: float | None = None
    _times: list[float] = field(default_factory=list)
    _horizon: Horizon | None = None

    @property
    def horizon(self) -> Horizon:
        if self._horizon is not None:
            return self._horizon
        return Horizon(self.window, self.history, min(self.history, WARMUP))

    def update(self, price: float, when: float | None = None) -> Estimate | None:
        """The estimate once a full window has been seen, else None."""
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"price must be a positive finite number, got {price!r}")
        if when is not None and self._horizon is None and len(self._times) <= SPACING_GAPS:
            self._times.append(when)
            if len(self._times) == SPACING_GAPS + 1:
                self._horizon = horizon(self._times)
        h = self.horizon
        last, self._last = self._last, price
        if last is None:
            return None
        self._returns.append(math.log(price / last))
        while len(self._returns) > max(WINDOW, h.window):
            self._returns.popleft()
        if len(self._returns) < h.window or (
            when is not None and self._horizon is None and len(self._times) <= SPACING_GAPS
        ):
            return None
        window = h.window
        r = np.fromiter(self._returns, dtype=np.float64, count=len(self._returns))[-window:]
        # The same reductions as the batch path, bit for bit: discrete prices make exact ties,
        # and a last-bit difference would rank them differently.
        row = np.lib.stride_tricks.sliding_window_view(r, window)
        vol = float(row.std(axis=1)[0])
        trend = 0.0 if vol == 0.0 else abs(float(row.sum(axis=1)[0])) / (vol * math.sqrt(window))
        weight, confidence, reason = _warmup(len(self._vols), h)
        pe = permutation_entropy(r) if vol > 0 else 0.0
        vol_rank = _shrink(_rank(vol, self._vols), weight) if vol > 0 else 0.0
        rank = _shrink(_rank(trend, self._trends), weight)
        profit = (
            rank if self._profit is None else self._profit + PROFIT_ALPHA * (rank - self._profit)
        )
        self._profit = profit
        for q, v in ((self._vols, vol), (self._trends, trend)):
            q.append(v)
            while len(q) > h.history:
                q.popleft()
        entropy = min(1.0, max(0.0, PE_WEIGHT * pe + (1 - PE_WEIGHT) * vol_rank))
        return Estimate(entropy, profit, confidence, reason)
