"""Market inputs from prices: entropy (volatility regime) and a profit-potential heuristic.

Market entropy, in [0, 1], over a window of ``window`` log returns:

    pe   = normalised permutation entropy of the returns (order 3): 1 for patternless moves,
           lower when moves repeat a shape (trending, mean-reverting)
    rank = percentile rank of the window's realised volatility (std of returns) among the
           previous ``history`` windows: 0 = the calmest seen, 1 = the wildest
    entropy = 0.25 * pe + 0.75 * rank

Windows in time as well as in counts. Given the bars' times, the bar spacing (the median of
the first 8 gaps) sets the horizon once (``horizon``):

    window  = clamp(45 days / spacing, 8, 32) returns     daily 32, weekly 8, monthly 8, ticks 32
    history = clamp(730 days / spacing, 24, 500) windows  daily 500, weekly 104, monthly 24
    warm-up = min(history, 60) windows of history

so a monthly series is not read over a 32-month window nor ranked against 40 years it does not
have. Without times (counts only) the window is 32 returns and the history 500 windows.

Warm-up is explicit. The first ``window`` prices give no estimate at all. After that, until the
history holds ``warm-up`` windows, each estimate is marked: its ranks are pulled towards mid-band
in proportion to the history it has (a rank against 3 windows says little, and would otherwise
read as the extreme of the whole series), its ``confidence`` ramps from 0.30 to 0.65, below the
0.7 apply gate, and its ``reason`` says how much history it had. After warm-up confidence is 1.
A constant series has zero volatility and a single ordinal pattern: it reads 0.

Profit potential, HEURISTIC for demos and replays (a real engine publishes its own on
``market.profit``): trend strength, the percentile rank of |sum of returns| / (std * sqrt(n))
over the window (a t-statistic of the drift) among the previous windows, smoothed by an EWMA
(alpha 0.2) because a trend worth scaling for persists. Strong, clean trends read high; chop low.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

WINDOW: Final = 32
HISTORY: Final = 500
ORDER: Final = 3
PE_WEIGHT: Final = 0.25
PROFIT_ALPHA: Final = 0.2
MIN_WINDOW: Final = 8
MIN_HISTORY: Final = 24
WARMUP: Final = 60
WINDOW_SPAN: Final = 45 * 86400.0
HISTORY_SPAN: Final = 730 * 86400.0
SPACING_GAPS: Final = 8  # the bar spacing is the median of the first 8 gaps
WARMUP_CONFIDENCE: Final = (0.30, 0.65)  # from no history to almost warm; 1.0 once warm
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


class Horizon(msgspec.Struct, frozen=True):
    """How many returns a window holds and how many windows a rank is taken against."""

    window: int = WINDOW
    history: int = HISTORY
    warmup: int = WARMUP
    spacing_seconds: float | None = None  # None: counts only (no times given)


def horizon(times: Sequence[float] | F64 | None) -> Horizon:
    """The horizon for bars at these times (only the first 8 gaps are read)."""
    if times is None:
        return Horizon()
    t = np.asarray(times, dtype=np.float64)[: SPACING_GAPS + 1]
    if t.size < SPACING_GAPS + 1:
        return Horizon()
    spacing = float(np.median(np.diff(t)))
    if not math.isfinite(spacing) or spacing <= 0:
        return Horizon()
    window = min(WINDOW, max(MIN_WINDOW, round(WINDOW_SPAN / spacing)))
    history = min(HISTORY, max(MIN_HISTORY, round(HISTORY_SPAN / spacing)))
    return Horizon(window, history, min(history, WARMUP), spacing)


class Estimate(NamedTuple):
    entropy: float
    profit: float
    confidence: float = 1.0  # below 1 during warm-up
    reason: str = ""  # why it is below 1


def _warmup(filled: int, h: Horizon) -> tuple[float, float, str]:
    """(weight of the ranks, confidence, reason) with ``filled`` windows of history."""
    if filled >= h.warmup:
        return 1.0, 1.0, ""
    frac = filled / h.warmup
    lo, hi = WARMUP_CONFIDENCE
    bars = ""
    if h.spacing_seconds is not None:
        bars = f"; bars every {_duration(h.spacing_seconds)}, window {h.window} bars"
    return (
        frac,
        lo + (hi - lo) * frac,
        f"Market estimate warming up: volatility ranked against {filled} of the "
        f"{h.warmup} windows it needs{bars}; confidence lowered.",
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


class MarketSeries(NamedTuple):
    entropy: F64
    profit: F64
    confidence: F64  # 0 where there is no estimate yet (the first ``window`` prices)
    horizon: Horizon


def estimate_series(
    prices: npt.ArrayLike, times: Sequence[float] | F64 | None = None, h: Horizon | None = None
) -> MarketSeries:
    """Every price's estimate (the first ``window`` read 0.5 with confidence 0: no data yet)."""
    h = h if h is not None else horizon(times)
    r = log_returns(prices)
    n = r.size + 1
    entropy = np.full(n, 0.5)
    profit = np.full(n, 0.5)
    confidence = np.zeros(n)
    window, history = h.window, h.history
    if r.size < window:
        return MarketSeries(entropy, profit, confidence, h)
    wins = np.lib.stride_tricks.sliding_window_view(r, window)
    vols = wins.std(axis=1)
    sums = np.abs(wins.sum(axis=1))
    trends = np.zeros_like(vols)
    moving = vols > 0
    trends[moving] = sums[moving] / (vols[moving] * math.sqrt(window))
    smoothed: float | None = None
    for k in range(wins.shape[0]):
        lo = max(0, k - history)
        weight, confidence[k + window], _ = _warmup(k - lo, h)
        pe = permutation_entropy(wins[k]) if vols[k] > 0 else 0.0
        vol_rank = _shrink(_rank(float(vols[k]), vols[lo:k]), weight) if vols[k] > 0 else 0.0
        entropy[k + window] = min(1.0, max(0.0, PE_WEIGHT * pe + (1 - PE_WEIGHT) * vol_rank))
        rank = _shrink(_rank(float(trends[k]), trends[lo:k]), weight)
        smoothed = rank if smoothed is None else smoothed + PROFIT_ALPHA * (rank - smoothed)
        profit[k + window] = smoothed
    return MarketSeries(entropy, profit, confidence, h)


def _shrink(rank: float, weight: float) -> float:
    return rank if weight >= 1.0 else 0.5 + (rank - 0.5) * weight


def entropy_and_profit_series(
    prices: npt.ArrayLike,
    window: int = WINDOW,
    history: int = HISTORY,
    *,
    times: Sequence[float] | F64 | None = None,
) -> tuple[F64, F64]:
    """Both estimates for every price (the first ``window`` read 0.5: not enough data).
    With ``times`` the window and history follow the bar spacing (``horizon``)."""
    h = horizon(times) if times is not None else Horizon(window, history, min(history, WARMUP))
    est = estimate_series(prices, h=h)
    return est.entropy, est.profit


def _empty() -> F64:
    return np.zeros(0)


def _empty_pairs() -> F64:
    return np.zeros((2, 0))


@dataclass(slots=True)
class StreamingEstimator:
    """The same estimates, one price at a time (the decider uses it on ``market.ticks``).

    Give each price its time (``update(price, when)``) and the horizon follows the bar spacing
    as in ``horizon``; without times it is counts only (or the ``window``/``history`` given).

    The decider holds one per (host, symbol), so its history is in fixed float64 rings, not
    deques of Python floats (a float object and a pointer each, four times the bytes): the
    returns twice over (each written at i and i + capacity, so the newest window is one
    slice), the windows' volatilities and trend strengths in one (2, history) array. Those
    are only ever ranked, and a percentile rank counts, so they are kept in no order."""

    window: int = WINDOW
    history: int = HISTORY
    _last: float | None = None
    _returns: F64 = field(default_factory=_empty)  # 2 x capacity, allocated at the first return
    _returns_seen: int = 0
    _ranked: F64 = field(default_factory=_empty_pairs)  # (2, history): volatilities, trends
    _ranked_seen: int = 0
    _profit: float | None = None
    _times: list[float] = field(default_factory=list)  # the first bars' times, until the horizon
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
                self._times = []  # read once
        h = self.horizon
        last, self._last = self._last, price
        if last is None:
            return None
        self._push_return(math.log(price / last))
        if self._returns_seen < h.window or (
            when is not None and self._horizon is None and len(self._times) <= SPACING_GAPS
        ):
            return None
        window = h.window
        r = self._newest_returns(window)
        # The same reductions as the batch path, bit for bit: discrete prices make exact ties,
        # and a last-bit difference would rank them differently.
        row = np.lib.stride_tricks.sliding_window_view(r, window)
        vol = float(row.std(axis=1)[0])
        trend = 0.0 if vol == 0.0 else abs(float(row.sum(axis=1)[0])) / (vol * math.sqrt(window))
        filled = self._ranked_filled()
        weight, confidence, reason = _warmup(filled, h)
        pe = permutation_entropy(r) if vol > 0 else 0.0
        vol_rank = _shrink(_rank(vol, self._ranked[0, :filled]), weight) if vol > 0 else 0.0
        rank = _shrink(_rank(trend, self._ranked[1, :filled]), weight)
        profit = (
            rank if self._profit is None else self._profit + PROFIT_ALPHA * (rank - self._profit)
        )
        self._profit = profit
        self._push_ranked(vol, trend, h.history)
        entropy = min(1.0, max(0.0, PE_WEIGHT * pe + (1 - PE_WEIGHT) * vol_rank))
        return Estimate(entropy, profit, confidence, reason)

    def _push_return(self, value: float) -> None:
        if not self._returns.size:
            self._returns = np.zeros(2 * max(WINDOW, self.window))
        cap = self._returns.size // 2
        i = self._returns_seen % cap
        self._returns[i] = self._returns[i + cap] = value
        self._returns_seen += 1

    def _newest_returns(self, k: int) -> F64:
        """The newest ``k`` returns, oldest first, as a fresh array (as the deque's copy was)."""
        cap = self._returns.size // 2
        end = (self._returns_seen - 1) % cap + cap + 1
        return self._returns[end - k : end].copy()

    def _push_ranked(self, vol: float, trend: float, history: int) -> None:
        """Keep the newest ``history`` (volatility, trend) pairs. A horizon settled after
        estimates were made (times given only later) changes the capacity: the newest
        ``history - 1`` are kept, in order, before this one is added."""
        cap = self._ranked.shape[1]
        if cap != history:
            kept = self._chronological()[:, max(0, self._ranked_filled() - (history - 1)) :]
            self._ranked = np.zeros((2, history))
            self._ranked[:, : kept.shape[1]] = kept
            self._ranked_seen, cap = kept.shape[1], history
        i = self._ranked_seen % cap
        self._ranked[0, i], self._ranked[1, i] = vol, trend
        self._ranked_seen += 1

    def _ranked_filled(self) -> int:
        return min(self._ranked_seen, int(self._ranked.shape[1]))

    def _chronological(self) -> F64:
        cap = self._ranked.shape[1]
        if self._ranked_seen <= cap:
            return self._ranked[:, : self._ranked_seen]
        start = self._ranked_seen % cap
        return np.concatenate((self._ranked[:, start:], self._ranked[:, :start]), axis=1)
