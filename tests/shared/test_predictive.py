"""shared/predictive.py: reserve top-tier capacity while profit rises, with hysteresis."""

from __future__ import annotations

import math

import pytest

from shared.predictive import FAST_SECONDS, SLOW_SECONDS, TrendState, update


def run(points: list[tuple[float, float]], state: TrendState | None = None) -> TrendState:
    s = state or TrendState()
    for t, p in points:
        s = update(s, p, t)
    return s


def steady(p: float, start: float, seconds: int) -> list[tuple[float, float]]:
    return [(start + i, p) for i in range(seconds)]


def test_first_value_seeds_both_averages() -> None:
    assert update(TrendState(), 0.7, 5.0) == TrendState(0.7, 0.7, 5.0, False)


def test_averages_follow_their_time_constants() -> None:
    s = update(TrendState(0.0, 0.0, 0.0), 1.0, FAST_SECONDS)
    assert s.fast == pytest.approx(1 - math.exp(-1))
    assert s.slow == pytest.approx(1 - math.exp(-FAST_SECONDS / SLOW_SECONDS))
    same = update(s, 0.0, FAST_SECONDS - 1.0)  # time going backwards moves nothing
    assert (same.fast, same.slow) == (s.fast, s.slow)


def test_rising_profit_reserves_and_steady_high_profit_keeps_it() -> None:
    s = run(steady(0.3, 0.0, 60))
    assert not s.reserved
    s = run([(60.0, 0.9)], s)
    assert s.reserved  # trend jumps well above +0.05 with profit above 0.5
    s = run(steady(0.9, 61.0, 300), s)
    assert s.fast is not None and s.slow is not None
    assert abs(s.fast - s.slow) < 0.05 and s.reserved  # no trend any more: held (hysteresis)


def test_a_rise_below_the_reserve_edge_does_not_reserve() -> None:
    s = run([*steady(0.1, 0.0, 60), (60.0, 0.45), (61.0, 0.45)])
    assert s.fast is not None and s.slow is not None and s.fast - s.slow > 0.05
    assert not s.reserved


def test_release_when_profit_drops_below_the_floor() -> None:
    held = TrendState(0.9, 0.9, 0.0, True)
    assert not update(held, 0.39, 0.001).reserved
    assert update(held, 0.41, 0.001).reserved  # no trend yet, above the floor: held


def test_release_when_the_trend_falls() -> None:
    s = run(steady(0.9, 0.0, 60), TrendState(0.9, 0.9, -1.0, True))
    assert s.reserved
    s = run(steady(0.45, 60.0, 10), s)
    assert s.fast is not None and s.slow is not None and s.fast - s.slow < -0.05
    assert not s.reserved
