"""One host-level market value from many symbols' values, independent of arrival order.

An engine trading many symbols gives the decider one estimate per symbol; the host needs one
market entropy (and one profit potential). The statistic is chosen so that a crash in a few
symbols is seen: a plain high quantile of 1 000 symbols would ignore a crash in 100 of them.

Which rule wins: a fresh index symbol > exposure weights > the default
max(median, mean of the top k), k = min(TOP_K, n).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TOP_K = 5  # the "top k" of the default statistic: small, so a few crashing symbols show
CONTRIBUTORS = 3  # how many of the highest symbols a reason names


@dataclass(frozen=True, slots=True)
class SymbolValue:
    """One symbol's latest derived value and when its last event happened."""

    value: float
    event_time: float


@dataclass(frozen=True, slots=True)
class Aggregate:
    value: float
    rule: str  # "single", "index", "weighted", "top-k" or "median"
    k: int  # the k of the top-k mean (0 for the other rules)
    fresh: int  # symbols within the staleness limit that entered the statistic
    event_time: float  # the newest event time among the fresh symbols
    top: tuple[tuple[str, float], ...]  # the highest fresh symbols, highest first

    def describe(self) -> str:
        """The aggregate in words, for a decision's reason."""
        what = {
            "single": "one symbol",
            "index": "index symbol",
            "weighted": f"exposure-weighted mean of {self.fresh} symbols",
            "top-k": f"top-{self.k} mean of {self.fresh} symbols",
            "median": f"median of {self.fresh} symbols",
        }[self.rule]
        highest = ", ".join(f"{s} {v:.2f}" for s, v in self.top)
        return f"{what}; highest {highest}" if highest else what


def aggregate(
    values: Mapping[str, SymbolValue],
    *,
    now: float,
    staleness_seconds: float,
    weights: Mapping[str, float] | None = None,
    index_symbol: str | None = None,
) -> Aggregate | None:
    """The host aggregate over the symbols seen within staleness_seconds of now; None when no
    symbol is fresh (a closed market: a stale input, as with no message at all)."""
    fresh = {s: v for s, v in values.items() if now - v.event_time <= staleness_seconds}
    if not fresh:
        return None
    # Sorted by (value desc, symbol) so ties, and therefore reasons, never depend on order.
    ranked = sorted(fresh.items(), key=lambda kv: (-kv[1].value, kv[0]))
    top = tuple((s, v.value) for s, v in ranked[:CONTRIBUTORS])
    newest = max(v.event_time for v in fresh.values())
    n = len(fresh)
    if index_symbol is not None and index_symbol in fresh:
        idx = fresh[index_symbol]
        return Aggregate(idx.value, "index", 0, n, newest, ((index_symbol, idx.value),))
    if weights:
        pairs = [(fresh[s].value, w) for s, w in sorted(weights.items()) if s in fresh and w > 0]
        total = sum(w for _, w in pairs)
        if total > 0:
            value = sum(v * w for v, w in pairs) / total
            return Aggregate(value, "weighted", 0, len(pairs), newest, top)
    return _default([(-v.value, s) for s, v in ranked], newest)


def _default(ranked: Sequence[tuple[float, str]], newest: float) -> Aggregate:
    """max(median, top-k mean) of (-value, symbol) pairs sorted ascending (highest first)."""
    n = len(ranked)
    top = tuple((s, -nv) for nv, s in ranked[:CONTRIBUTORS])
    if n == 1:
        return Aggregate(-ranked[0][0], "single", 0, 1, newest, top)
    k = min(TOP_K, n)
    top_mean = sum(-nv for nv, _ in ranked[:k]) / k
    mid = n // 2
    median = -ranked[mid][0] if n % 2 else (-ranked[mid][0] + -ranked[mid - 1][0]) / 2
    if top_mean >= median:
        return Aggregate(top_mean, "top-k", k, n, newest, top)
    return Aggregate(median, "median", 0, n, newest, top)


@dataclass
class RankedValues:
    """Symbols' values kept ranked as they change, so the default aggregate of a host's
    symbols costs O(log n) a tick instead of a sort of them all; equal to aggregate() when
    every symbol is fresh and neither weights nor an index apply."""

    ranked: list[tuple[float, str]] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)

    def set(self, symbol: str, value: float) -> None:
        self.remove(symbol)
        self.values[symbol] = value
        bisect.insort(self.ranked, (-value, symbol))

    def remove(self, symbol: str) -> None:
        held = self.values.pop(symbol, None)
        if held is not None:
            del self.ranked[bisect.bisect_left(self.ranked, (-held, symbol))]

    def default(self, newest: float) -> Aggregate | None:
        return _default(self.ranked, newest) if self.ranked else None
