"""Market entropy and the profit heuristic on real series, any frequency, edge cases."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime

import numpy as np
import pytest

from shared.market import StreamingEstimator, entropy_and_profit_series, permutation_entropy
from tests.support.data import DATA, sp500_close, tick_like


def _sp500() -> tuple[list[datetime], np.ndarray]:  # type: ignore[type-arg]
    with gzip.open(DATA / "sp500.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    return [datetime.strptime(r["Date"], "%m/%d/%Y") for r in rows], np.array(
        [float(r["Close"]) for r in rows]
    )


def _mean(dates: list[datetime], values: np.ndarray, a: datetime, b: datetime) -> float:  # type: ignore[type-arg]
    return float(np.mean([v for d, v in zip(dates, values, strict=True) if a <= d < b]))


def test_autumn_2008_reads_clearly_higher_than_calm_years() -> None:
    dates, px = _sp500()
    entropy, profit = entropy_and_profit_series(px)
    crisis = _mean(dates, entropy, datetime(2008, 9, 1), datetime(2009, 1, 1))
    for year in (2005, 2006, 2017):
        calm = _mean(dates, entropy, datetime(year, 1, 1), datetime(year + 1, 1, 1))
        assert crisis > calm + 0.3, (year, crisis, calm)
    assert crisis > 0.9
    assert np.all((entropy >= 0) & (entropy <= 1)) and np.all((profit >= 0) & (profit <= 1))


def test_any_frequency_weekly_bars_and_ticks() -> None:
    dates, px = _sp500()
    weekly_dates, weekly = dates[::5], px[::5]  # weekly bars from the same market
    entropy, _ = entropy_and_profit_series(weekly)
    crisis = _mean(weekly_dates, entropy, datetime(2008, 9, 1), datetime(2009, 6, 1))
    calm = _mean(weekly_dates, entropy, datetime(2005, 1, 1), datetime(2007, 1, 1))
    assert crisis > calm + 0.2
    # ticks: a calm random walk, then the same walk with 10x the step size
    rng = np.random.default_rng(9)
    steps = np.concatenate([rng.normal(0, 1e-5, 3000), rng.normal(0, 1e-4, 1000)])
    ticks = 43_210.55 * np.exp(np.cumsum(steps))
    e, _ = entropy_and_profit_series(ticks)
    # ranked against the last 500 windows: the change reads high until it becomes the norm
    assert e[3040:3300].mean() > e[1000:3000].mean() + 0.2


def test_short_and_constant_series() -> None:
    e, p = entropy_and_profit_series([100.0, 101.0, 100.5])
    assert np.all(e == 0.5) and np.all(p == 0.5)  # not enough data: mid-band, said plainly
    e, p = entropy_and_profit_series(np.full(200, 42.0))
    assert np.all(e[32:] == 0.0)  # no movement, no entropy
    assert permutation_entropy([1.0, 2.0, 3.0, 4.0, 5.0]) == 0.0  # one ordinal pattern
    with pytest.raises(ValueError, match="positive finite"):
        entropy_and_profit_series([1.0, -2.0, 3.0])


def test_streaming_matches_the_batch_estimate() -> None:
    px = sp500_close()  # real, continuous prices: identical
    e, p = entropy_and_profit_series(px)
    est = StreamingEstimator()
    out = [est.update(float(x)) for x in px]
    assert all(o is None for o in out[:32])
    assert np.array_equal([o[0] for o in out[32:]], e[32:])  # type: ignore[index]
    assert np.array_equal([o[1] for o in out[32:]], p[32:])  # type: ignore[index]
    # discrete ticks make near-ties whose order float noise can flip: entropy still identical,
    # the smoothed profit within 0.01
    ticks = tick_like(3000)
    e, p = entropy_and_profit_series(ticks)
    est = StreamingEstimator()
    out = [est.update(float(x)) for x in ticks]
    assert np.array_equal([o[0] for o in out[32:]], e[32:])  # type: ignore[index]
    assert np.abs(np.array([o[1] for o in out[32:]]) - p[32:]).max() < 0.01  # type: ignore[index]
    with pytest.raises(ValueError, match="positive finite"):
        est.update(float("nan"))


def test_streaming_estimator_memory_is_fixed_at_creation() -> None:
    est = StreamingEstimator()
    size = est.nbytes
    assert size <= 8 * (32 + 2 * 500) + 64  # float64 arrays: window + two histories
    for x in tick_like(3000):  # far past the history: nothing grows
        est.update(float(x))
    assert est.nbytes == size
