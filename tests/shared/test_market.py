"""Market entropy and the profit heuristic on real series, any frequency, edge cases."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime

import numpy as np
import pytest

from shared.csvseries import read_series
from shared.market import (
    Horizon,
    StreamingEstimator,
    entropy_and_profit_series,
    estimate_series,
    horizon,
    permutation_entropy,
)
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


# Estimators that know how much history they have: the shipped daily series with its own times,
# and hourly, weekly and monthly series built from it.


def _daily() -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    s = read_series(DATA / "sp500.csv.gz")
    return s.times, s.prices


def _month_ends(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    months = [datetime.fromtimestamp(x, UTC).strftime("%Y-%m") for x in t]
    last = [i for i in range(len(months)) if i + 1 == len(months) or months[i] != months[i + 1]]
    return t[last], p[last]


def _when(t: np.ndarray, a: str, b: str) -> np.ndarray:  # type: ignore[type-arg]
    lo, hi = (datetime.fromisoformat(x).replace(tzinfo=UTC).timestamp() for x in (a, b))
    return (t >= lo) & (t < hi)  # type: ignore[no-any-return]


def test_horizon_follows_the_bar_spacing() -> None:
    t, p = _daily()
    hourly = t[0] + 3600.0 * np.arange(t.size)
    mt, _ = _month_ends(t, p)
    assert (horizon(t).window, horizon(t).history, horizon(t).spacing_seconds) == (32, 500, 86400)
    assert (horizon(hourly).window, horizon(hourly).history) == (32, 500)
    assert (horizon(t[::5]).window, horizon(t[::5]).history) == (8, 104)  # weekly: 2 years
    assert (horizon(mt).window, horizon(mt).history, horizon(mt).warmup) == (8, 24, 24)
    assert horizon(None) == horizon(t[:3]) == Horizon(32, 500, 60, None)  # counts only


def test_monthly_bars_read_regimes_not_their_own_start() -> None:
    t, p = _month_ends(*_daily())
    m = estimate_series(p, t)
    assert t.size == 240 and m.horizon.window == 8
    warm = m.horizon.window + m.horizon.warmup
    # the month-end series' highest readings are the 2007-08 crisis, not the first months
    top = np.argsort(-m.entropy)[:8]
    assert all(_when(t, "2007-07-01", "2009-01-01")[top[:1]]), t[top[:1]]
    assert m.entropy[:warm].max() < m.entropy[_when(t, "2007-07-01", "2009-01-01")].max() - 0.1
    crisis = m.entropy[_when(t, "2008-09-01", "2009-04-01")].mean()
    calm = m.entropy[_when(t, "2005-01-01", "2007-01-01")].mean()
    assert crisis > 0.85 and crisis > calm + 0.4, (crisis, calm)
    # warm-up: no estimate for the first window, then confidence below the 0.7 gate, rising
    assert np.all(m.confidence[:8] == 0)
    ramp = m.confidence[8:warm]
    assert np.all((ramp >= 0.3) & (ramp < 0.7)) and np.all(np.diff(ramp) > 0)
    assert np.all(m.confidence[warm:] == 1.0)


def test_daily_and_hourly_bars_keep_the_32_bar_window() -> None:
    t, p = _daily()
    daily = estimate_series(p, t)
    hourly = estimate_series(p, t[0] + 3600.0 * np.arange(t.size))
    assert np.array_equal(daily.entropy, hourly.entropy)  # same bars, same counts: same reading
    crisis = daily.entropy[_when(t, "2008-09-01", "2009-01-01")].mean()
    assert (
        crisis > 0.9 and crisis > daily.entropy[_when(t, "2017-01-01", "2018-01-01")].mean() + 0.4
    )
    assert np.all(daily.confidence[92:] == 1.0) and daily.confidence[91] < 0.7  # 32 + 60 windows


def test_weekly_bars_with_times() -> None:
    t, p = _daily()
    w = estimate_series(p[::5], t[::5])
    crisis = w.entropy[_when(t[::5], "2008-09-01", "2009-06-01")].mean()
    calm = w.entropy[_when(t[::5], "2005-01-01", "2007-01-01")].mean()
    assert w.horizon.window == 8 and crisis > calm + 0.3, (crisis, calm)


def test_streaming_with_times_matches_the_batch_and_says_why_during_warmup() -> None:
    for t, p in (_month_ends(*_daily()), _daily()):
        m = estimate_series(p, t)
        est = StreamingEstimator()
        out = [est.update(float(x), float(w)) for x, w in zip(p, t, strict=True)]
        k = m.horizon.window
        assert all(o is None for o in out[:k]) and all(o is not None for o in out[k:])
        got = [o for o in out[k:] if o is not None]
        assert np.array_equal([o.entropy for o in got], m.entropy[k:])
        assert np.array_equal([o.profit for o in got], m.profit[k:])
        assert np.array_equal([o.confidence for o in got], m.confidence[k:])
        first, warm = got[0], got[m.horizon.warmup]
        assert first.confidence < 0.7 and "warming up" in first.reason
        assert f"0 of the {m.horizon.warmup} windows" in first.reason
        assert warm.confidence == 1.0 and warm.reason == ""
