"""The streaming estimator on numpy rings gives, bit for bit, what it gave on deques (the
reference in tests/support), on the real series beside the repository, and holds a warmed
(host, symbol) estimate in a quarter of the memory."""

from __future__ import annotations

import gc
import sys
import types

import numpy as np
import pytest

from shared.csvseries import read_series
from shared.market import HISTORY, WINDOW, StreamingEstimator
from tests.support.data import DATA, tick_like
from tests.support.reference_estimator import StreamingEstimator as DequeEstimator

ESTIMATOR_TARGET_BYTES = 12 * 1024


def _both(
    prices: np.ndarray,
    times: np.ndarray | None,
    window: int = WINDOW,
    history: int = HISTORY,
) -> None:
    ring, deq = StreamingEstimator(window, history), DequeEstimator(window, history)
    made = 0
    for i, p in enumerate(prices.tolist()):
        when = None if times is None else float(times[i])
        a, b = ring.update(p, when), deq.update(p, when)
        assert a == b, (i, a, b)  # every field, floats compared exactly
        made += a is not None
    assert made > len(prices) // 2  # the series was estimated, not just skipped


def _real(name: str) -> tuple[np.ndarray, np.ndarray]:
    s = read_series(DATA / f"{name}.csv.gz")
    return s.prices, s.times


@pytest.mark.parametrize("name", ["sp500", "wti"])
def test_rings_match_the_deques_on_real_daily_series(name: str) -> None:
    prices, times = _real(name)
    assert prices.size > 5_000  # longer than the 500-window history: the rings wrap many times
    _both(prices, None)  # counts only: window 32, history 500
    _both(prices, times)  # daily bars: the same, from their times
    _both(prices[::5], times[::5])  # weekly bars: window 8, history 104
    _both(prices[::21], times[::21])  # about monthly: window 8, history 24


def test_rings_match_the_deques_on_discrete_ticks_and_given_horizons() -> None:
    ticks = tick_like(6_000)  # exact ties in the ranked histories
    _both(ticks, None)
    _both(ticks, 1_000.0 + 0.25 * np.arange(ticks.size))
    _both(ticks, None, window=64, history=50)  # a window longer than the default
    _both(ticks, None, window=8, history=24)


def test_a_horizon_settled_late_keeps_the_newest_history_in_order() -> None:
    # Times given only after estimates were made: the history shrinks from 500 windows to the
    # weekly 104 with the newest kept; the newest ranked against what was there before.
    prices, times = _real("sp500")
    weekly_p, weekly_t = prices[::5], times[::5]
    ring, deq = StreamingEstimator(), DequeEstimator()
    for i, p in enumerate(weekly_p.tolist()):
        when = float(weekly_t[i]) if i >= 700 else None
        assert ring.update(p, when) == deq.update(p, when), i
    assert ring.horizon.history == 104 and ring.horizon == deq.horizon
    # and one that grows: a given history of 24 against daily bars' 500
    ring, deq = StreamingEstimator(history=24), DequeEstimator(history=24)
    for i, p in enumerate(prices[:3_000].tolist()):
        when = float(times[i]) if i >= 100 else None
        assert ring.update(p, when) == deq.update(p, when), i
    assert ring.horizon.history == 500


def _held_bytes(est: object) -> int:
    """Every byte the object holds: itself and what it refers to, each once (numpy arrays with
    their buffers; deques with their blocks and float objects), classes and modules excluded."""
    seen: set[int] = set()
    todo, total = [est], 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
    return total


def test_a_warmed_estimator_holds_at_most_12_kb() -> None:
    prices = tick_like(600).tolist()  # 599 returns: 32 in the window, a full 500-window history
    ring, deq = StreamingEstimator(), DequeEstimator()
    for p in prices:
        ring.update(p)
        deq.update(p)
    assert ring._ranked_filled() == 500 and len(deq._vols) == 500  # warmed: ~1 000 values held
    ring_bytes, deque_bytes = _held_bytes(ring), _held_bytes(deq)
    assert ring_bytes <= ESTIMATOR_TARGET_BYTES, ring_bytes
    assert deque_bytes > 3 * ring_bytes, (deque_bytes, ring_bytes)  # the deques held about 36 KB
