"""Market inputs from prices: entropy (volatility regime) and a profit-potential heuristic.

Market entropy, in [0, 1], over a window of ``window`` log returns (default 32):

    pe   = normalised permutation entropy of the returns (order 3): 1 for patternless moves,
           lower when moves repeat a shape (trending, mean-reverting)
    rank = percentile rank of the window's realised volatility (std of returns) among the
           previous ``history`` windows (default 500): 0 = the calmest seen, 1 = the wildest
    entropy = 0.25 * pe + 0.75 * rank

Only returns and counts are used, so the same estimator works on ticks, minute bars or daily
bars: "the window" is always the last 32 observations. Ranking volatility against its own
history makes the value relative to the instrument and the bar size. Until ``min_history``
windows have been seen, the rank is against what there is (a short series reads mid-band).
A constant series has zero volatility and a single ordinal pattern: it reads 0.

Profit potential, HEURISTIC for demos and replays (a real engine publishes its own on
``market.profit``): trend strength, the percentile rank of |sum of returns| / (std * sqrt(n))
over the window (a t-statistic of the drift) among the previous windows, smoothed by an EWMA
(alpha 0.2) because a trend worth scaling for persists. Strong, clean trends read high; chop low.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

WINDOW: Final = 32
HISTORY: Final = 500
ORDER: Final = 3
PE_WEIGHT: Final = 0.25
PROFIT_ALPHA: Final = 0.2
_LOG_PATTERNS: Final = math.log(math.factorial(ORDER))

F64 = npt.NDArray[np.float64]


def log_returns(prices: npt.ArrayLike) -> F64:
    p = np.asarray(prices, dtype=np.float64)
    if p.size and (not np.all(np.isfinite(p)) or np.any(p <= 0)):
        raise ValueError("prices must be positive finite numbers")
    return np.diff(np.log(p))


def permutation_entropy(returns: Sequence[float] | F64) -> float:
    """Normalised permutation entropy (order 3) of a short run of returns, in [0, 1]."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < ORDER:
        return 0.5
    windows = np.lib.stride_tricks.sliding_window_view(r, ORDER)
    ranks = np.argsort(windows, axis=1, kind="stable")
    codes = ranks[:, 0] * 9 + ranks[:, 1] * 3 + ranks[:, 2]
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / _LOG_PATTERNS)


def _rank(value: float, history: Sequence[float] | F64) -> float:
    """Percentile rank; values within 1e-7 (relative) are ties, so the same series ranks the same
    whether its returns were computed one at a time or vectorised (they differ in the last bit)."""
    h = np.asarray(history, dtype=np.float64)
    if h.size == 0:
        return 0.5
    tol = 1e-7 * abs(value) + 1e-12  # the floor: a drift of exactly 0 vs 1e-17
    below = np.count_nonzero(h < value - tol)
    ties = np.count_nonzero(np.abs(h - value) <= tol)
    return float((below + 0.5 * ties) / h.size)


def entropy_and_profit_series(
    prices: npt.ArrayLike, window: int = WINDOW, history: int = HISTORY
) -> tuple[F64, F64]:
    """Both estimates for every price (the first ``window`` read 0.5: not enough data)."""
    r = log_returns(prices)
    n = r.size + 1
    entropy = np.full(n, 0.5)
    profit = np.full(n, 0.5)
    if r.size < window:
        return entropy, profit
    wins = np.lib.stride_tricks.sliding_window_view(r, window)
    vols = wins.std(axis=1)
    sums = np.abs(wins.sum(axis=1))
    trends = np.zeros_like(vols)
    moving = vols > 0
    trends[moving] = sums[moving] / (vols[moving] * math.sqrt(window))
    smoothed: float | None = None
    for k in range(wins.shape[0]):
        lo = max(0, k - history)
        pe = permutation_entropy(wins[k]) if vols[k] > 0 else 0.0
        vol_rank = _rank(float(vols[k]), vols[lo:k]) if vols[k] > 0 else 0.0
        entropy[k + window] = min(1.0, max(0.0, PE_WEIGHT * pe + (1 - PE_WEIGHT) * vol_rank))
        rank = _rank(float(trends[k]), trends[lo:k])
        smoothed = rank if smoothed is None else smoothed + PROFIT_ALPHA * (rank - smoothed)
        profit[k + window] = smoothed
    return entropy, profit


class _Ring:
    """The last ``size`` floats in one preallocated float64 array (8 bytes a value). Order is not
    kept: a percentile rank does not need it."""

    __slots__ = ("_data", "_i", "_n")

    def __init__(self, size: int) -> None:
        self._data: F64 = np.empty(size, dtype=np.float64)
        self._n = 0
        self._i = 0

    def push(self, value: float) -> None:
        self._data[self._i] = value
        self._i = (self._i + 1) % self._data.size
        self._n = min(self._n + 1, self._data.size)

    def values(self) -> F64:
        return self._data[: self._n]

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)


@dataclass
class StreamingEstimator:
    """The same estimates, one price at a time (the decider uses it on ``market.ticks``).

    Memory is fixed at creation: ``window`` returns and ``history`` volatilities and trends, in
    preallocated float64 arrays (about 8 KiB at the defaults; see :attr:`nbytes`).
    """

    window: int = WINDOW
    history: int = HISTORY
    _last: float | None = None
    _profit: float | None = None

    def __post_init__(self) -> None:
        self._returns: F64 = np.empty(self.window, dtype=np.float64)  # oldest first once full
        self._seen = 0
        self._vols = _Ring(self.history)
        self._trends = _Ring(self.history)

    @property
    def nbytes(self) -> int:
        return int(self._returns.nbytes) + self._vols.nbytes + self._trends.nbytes

    def update(self, price: float) -> tuple[float, float] | None:
        """(entropy, profit) once a full window has been seen, else None."""
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"price must be a positive finite number, got {price!r}")
        last, self._last = self._last, price
        if last is None:
            return None
        ret = math.log(price / last)
        if self._seen < self.window:
            self._returns[self._seen] = ret
            self._seen += 1
            if self._seen < self.window:
                return None
        else:
            self._returns[:-1] = self._returns[1:]
            self._returns[-1] = ret
        r = self._returns
        # The same reductions as the batch path, bit for bit: discrete prices make exact ties,
        # and a last-bit difference would rank them differently.
        row = np.lib.stride_tricks.sliding_window_view(r, self.window)
        vol = float(row.std(axis=1)[0])
        trend = (
            0.0 if vol == 0.0 else abs(float(row.sum(axis=1)[0])) / (vol * math.sqrt(self.window))
        )
        pe = permutation_entropy(r) if vol > 0 else 0.0
        vol_rank = _rank(vol, self._vols.values()) if vol > 0 else 0.0
        rank = _rank(trend, self._trends.values())
        profit = (
            rank if self._profit is None else self._profit + PROFIT_ALPHA * (rank - self._profit)
        )
        self._profit = profit
        self._vols.push(vol)
        self._trends.push(trend)
        return min(1.0, max(0.0, PE_WEIGHT * pe + (1 - PE_WEIGHT) * vol_rank)), profit
