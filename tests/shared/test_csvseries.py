"""CSV layouts and bad-row handling, with exact counts."""

from __future__ import annotations

import gzip

import pytest

from shared.csvseries import LayoutError, load
from tests.support.data import DATA


def test_yahoo_layout_real_file() -> None:
    with gzip.open(DATA / "sp500.csv.gz", "rt") as f:
        s = load(f)
    assert s.layout == "Yahoo OHLCV" and s.time_column == "Date" and s.price_column == "Close"
    assert s.prices.size == 5031 and not s.skipped
    assert s.prices[0] == pytest.approx(1228.099976)


def test_fred_layout_real_file_counts_missing_days() -> None:
    with gzip.open(DATA / "wti.csv.gz", "rt") as f:
        text = f.read()
    s = load(text.splitlines())
    dots = sum(1 for line in text.splitlines()[1:] if line.split(",")[1].strip() == ".")
    assert s.layout == "FRED two-column" and s.price_column == "DCOILWTICO"
    assert s.skipped["missing values"] == dots
    assert s.prices.size == len(text.splitlines()) - 1 - sum(s.skipped.values())


def test_pandas_layout_with_unnamed_iso_time_column() -> None:
    lines = [",Open,High,Low,Close,Volume",
             "2024-01-02 09:30:00,10,11,9,10.5,100",
             "2024-01-02 09:31:00+00:00,10.5,11,10,10.7,80"]  # fmt: skip
    s = load(lines)
    assert s.layout == "pandas OHLCV" and s.time_column == "(unnamed)"
    assert list(s.prices) == [10.5, 10.7] and s.times[1] - s.times[0] == 60


def test_bad_rows_are_skipped_and_counted_exactly() -> None:
    lines = [
        "Date,Open,High,Low,Close,Adj Close,Volume",
        "1/2/2020,1,1,1,100,100,1",
        "1/3/2020,1,1,1,,100,1",  # missing
        "1/6/2020,1,1,1,.,100,1",  # FRED-style missing
        "1/7/2020,1,1,1,abc,100,1",  # non-numeric
        "1/8/2020,1,1,1,-5,100,1",  # non-positive
        "13/45/2020,1,1,1,101,100,1",  # unparsable time
        "1/1/2020,1,1,1,102,100,1",  # out of order
        "1/9/2020,1,1",  # short
        "1/10/2020,1,1,1,103,100,1",
        "",
    ]
    s = load(lines)
    assert list(s.prices) == [100.0, 103.0] and s.rows == 9
    assert dict(s.skipped) == {
        "missing values": 2, "non-numeric prices": 1, "non-positive prices": 1,
        "unparsable times": 1, "out-of-order times": 1, "short rows": 1,
    }  # fmt: skip
    assert "7 skipped" in s.summary()


def test_overrides_and_layout_errors() -> None:
    s = load(
        ["when,bid,ask", "2024-01-01,1,2", "2024-01-02,3,4"], time_column="when", price_column="ask"
    )
    assert list(s.prices) == [2.0, 4.0]
    with pytest.raises(LayoutError, match="cannot tell which column is the price"):
        load(["when,bid,ask", "2024-01-01,1,2"])
    with pytest.raises(LayoutError, match="no price column 'mid'"):
        load(["Date,Close", "2024-01-01,1"], price_column="mid")
    with pytest.raises(LayoutError, match="empty"):
        load([])
