"""Price series from CSV text, with the common layouts detected and bad rows counted.

Layouts recognised from the header:
- Yahoo: ``Date,Open,High,Low,Close,Adj Close,Volume`` (price: Close), dates m/d/Y or ISO;
- FRED: two columns, a date and the series (``DATE,DCOILWTICO``; price: the second column);
- pandas: an unnamed first column of ISO timestamps, then OHLC(V) (price: Close).
``time_column`` / ``price_column`` override the detection.

A bad row is skipped and counted under its reason, never fatal: a missing value, FRED's '.',
a non-numeric or non-positive price, an unparsable time, or a time not after the previous row.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

TIME_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y")
PRICE_NAMES = ("close", "adj close", "price", "last", "value")


class LayoutError(ValueError):
    """The file has no header or no column that could be a time or a price."""


@dataclass
class Series:
    times: npt.NDArray[np.float64]  # Unix seconds, UTC
    prices: npt.NDArray[np.float64]
    time_column: str
    price_column: str
    layout: str
    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.rows} rows, none skipped"
        reasons = ", ".join(f"{n} {why}" for why, n in self.skipped.most_common())
        return f"{self.rows} rows, {sum(self.skipped.values())} skipped ({reasons})"


def parse_time(text: str) -> float:
    text = text.strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in TIME_FORMATS:
            try:
                dt = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            try:
                return float(text)  # Unix seconds
            except ValueError:
                raise ValueError(f"unrecognised time {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _detect(
    header: list[str], time_column: str | None, price_column: str | None
) -> tuple[int, int, str]:
    names = [h.strip() for h in header]
    lowered = [n.lower() for n in names]

    def find(name: str, what: str) -> int:
        if name in names:
            return names.index(name)
        if name.lower() in lowered:
            return lowered.index(name.lower())
        raise LayoutError(f"no {what} column {name!r}; the header has {names}")

    if {"open", "high", "low", "close"} <= set(lowered):
        layout = "pandas OHLCV" if lowered[0] == "" else "Yahoo OHLCV"
        t = 0 if lowered[0] == "" else lowered.index("date") if "date" in lowered else 0
        p = lowered.index("close")
    elif len(names) == 2:
        layout, t, p = "FRED two-column", 0, 1
    else:
        layout = "generic"
        t = next(
            (
                i
                for i, n in enumerate(lowered)
                if n in ("date", "time", "timestamp", "datetime", "")
            ),
            0,
        )
        p = next((i for i, n in enumerate(lowered) if n in PRICE_NAMES), -1)
        if p < 0 and price_column is None:
            raise LayoutError(
                f"cannot tell which column is the price in {names}: use --price-column"
            )
    if time_column is not None:
        t = find(time_column, "time")
    if price_column is not None:
        p = find(price_column, "price")
    return t, p, layout


def load(
    lines: Iterable[str], time_column: str | None = None, price_column: str | None = None
) -> Series:
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header:
        raise LayoutError("the file is empty")
    t_idx, p_idx, layout = _detect(header, time_column, price_column)
    times: list[float] = []
    prices: list[float] = []
    skipped: Counter[str] = Counter()
    rows = 0
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        rows += 1
        if len(row) <= max(t_idx, p_idx):
            skipped["short rows"] += 1
            continue
        raw = row[p_idx].strip()
        if raw in ("", ".", "NA", "NaN", "nan", "null"):
            skipped["missing values"] += 1
            continue
        try:
            price = float(raw)
        except ValueError:
            skipped["non-numeric prices"] += 1
            continue
        if not np.isfinite(price) or price <= 0:
            skipped["non-positive prices"] += 1
            continue
        try:
            when = parse_time(row[t_idx])
        except ValueError:
            skipped["unparsable times"] += 1
            continue
        if times and when <= times[-1]:
            skipped["out-of-order times"] += 1
            continue
        times.append(when)
        prices.append(price)
    return Series(np.array(times), np.array(prices), header[t_idx].strip() or "(unnamed)",
                  header[p_idx].strip(), layout, rows, skipped)  # fmt: skip


def read_series(
    path: Path, time_column: str | None = None, price_column: str | None = None
) -> Series:
    """``load`` over a file; ``.gz`` files are decompressed on the fly."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        return load(f, time_column, price_column)
