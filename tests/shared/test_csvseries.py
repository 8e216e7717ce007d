"""CSV layouts and bad-row handling, with exact counts."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from shared.csvseries import LayoutError, load, read_series
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


# Files as people have them: each written by the test, read through read_series as `qas replay`
# reads them.


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_excel_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Adj Close,Volume\r\n1/2/2020,1,1,1,100,100,1\r\n1/3/2020,1,1,1,101,101,1\r\n"
    path = _write(tmp_path, "excel.csv", "\ufeff" + text)
    s = read_series(path)
    assert s.time_column == "Date" and s.layout == "Yahoo OHLCV" and list(s.prices) == [100, 101]
    assert read_series(path, time_column="Date").prices.size == 2
    # gzipped, and through load() on text that kept the mark
    gz = tmp_path / "excel.csv.gz"
    gz.write_bytes(gzip.compress(("\ufeff" + text).encode()))
    assert read_series(gz).time_column == "Date"
    assert load(("\ufeff" + text).splitlines()).time_column == "Date"


def test_semicolons_and_decimal_commas(tmp_path: Path) -> None:
    path = _write(tmp_path, "de.csv",
                  "Datum;Schluss\n02.01.2020;3.257,85\n03.01.2020;3234,85\n06.01.2020;3246,28\n")  # fmt: skip
    s = read_series(path)
    assert s.delimiter == ";" and s.price_column == "Schluss"
    assert list(s.prices) == [3257.85, 3234.85, 3246.28]
    assert s.times[1] - s.times[0] == 86400
    tabs = load(["Date\tClose", "2020-01-02\t1,5", "2020-01-03\t2,25"])
    assert list(tabs.prices) == [1.5, 2.25]


def test_quoted_fields_with_thousands_commas(tmp_path: Path) -> None:
    path = _write(tmp_path, "quoted.csv",
                  '"Date","Price","Vol."\n"01/02/2020","3,257.85","1.2M"\n"01/03/2020","3,234.85","1.1M"\n')  # fmt: skip
    s = read_series(path)
    assert s.price_column == "Price" and list(s.prices) == [3257.85, 3234.85] and not s.skipped


def test_several_price_columns_listed_then_picked(tmp_path: Path) -> None:
    path = _write(tmp_path, "wide.csv", "Date,AAPL,MSFT,GOOG\n2020-01-02,75.1,160.6,68.4\n"
                  "2020-01-03,74.4,158.6,68.1\n")  # fmt: skip
    with pytest.raises(
        LayoutError, match="the candidates are AAPL, MSFT, GOOG; pick one with --price-column"
    ):
        read_series(path)
    s = read_series(path, price_column="msft")
    assert s.price_column == "MSFT" and list(s.prices) == [160.6, 158.6]


def test_unix_seconds_and_milliseconds(tmp_path: Path) -> None:
    secs = _write(
        tmp_path, "s.csv", "timestamp,price\n1700000000,10\n1700000060,11\n1700000120.5,12\n"
    )
    s = read_series(secs)
    assert list(s.times) == [1_700_000_000, 1_700_000_060, 1_700_000_120.5]
    ms = _write(tmp_path, "ms.csv", "ts,price\n1700000000000,10\n1700000000250,11\n")
    m = read_series(ms)
    assert list(m.times) == [1_700_000_000.0, 1_700_000_000.25] and not m.skipped


def test_timezone_suffixed_iso_times(tmp_path: Path) -> None:
    path = _write(tmp_path, "tz.csv", "time,last\n"
                  "2024-01-02T09:30:00Z,10\n"
                  "2024-01-02T10:31:00+01:00,11\n"  # 09:31 UTC
                  "2024-01-02 04:32:00-05:00,12\n"  # 09:32 UTC
                  "2024-01-02 09:33:00 UTC,13\n"
                  "2024-01-02T09:34:00.500+0000,14\n")  # fmt: skip
    s = read_series(path)
    base = datetime(2024, 1, 2, 9, 30, tzinfo=UTC).timestamp()
    assert list(s.times - base) == [0, 60, 120, 180, 240.5] and not s.skipped


def test_descending_file_is_reversed_and_said(tmp_path: Path) -> None:
    path = _write(tmp_path, "newest_first.csv", "Date,Close\n"
                  "2020-01-07,104\n2020-01-06,103\n2020-01-06,99\n2020-01-03,102\n2020-01-02,101\n")  # fmt: skip
    s = read_series(path)
    assert s.descending and list(s.prices) == [101, 102, 99, 104]  # oldest first; of the two
    # 2020-01-06 rows the one read first after reversing is kept
    assert np.all(np.diff(s.times) > 0)
    assert s.skipped == {"out-of-order times": 1}  # the duplicate day, counted
    assert "newest first in the file, reversed" in s.summary()
    assert not read_series(
        _write(tmp_path, "up.csv", "Date,Close\n2020-01-02,1\n2020-01-03,2\n")
    ).descending
