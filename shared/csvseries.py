"""Price series from CSV text, with the common layouts detected and bad rows counted.

Layouts recognised from the header:
- Yahoo: ``Date,Open,High,Low,Close,Adj Close,Volume`` (price: Close), dates m/d/Y or ISO;
- FRED: two columns, a date and the series (``DATE,DCOILWTICO``; price: the second column);
- pandas: an unnamed first column of ISO timestamps, then OHLC(V) (price: Close).
``time_column`` / ``price_column`` override the detection.

Files as people have them are read as they are:
- a UTF-8 byte-order mark (Excel's "CSV UTF-8") is dropped from the header;
- the separator is detected from the header: ``,``, ``;`` or a tab; with ``;`` or a tab a
  decimal comma is read as a decimal point (``1.234,56`` is 1234.56);
- quoted fields (``"Close"``, ``"1,234.56"``: a thousands comma inside quotes is dropped);
- several candidate price columns and none named like a price (``Date,AAPL,MSFT``): an error
  that lists them, to pick one with ``--price-column``;
- times: ISO 8601 with or without a timezone suffix (``Z``, ``+01:00``, `` UTC``), m/d/Y,
  Y/m/d, d.m.Y, and Unix timestamps in seconds or milliseconds (13 digits and up);
- a file in descending time order (newest first, as many exports are) is reversed and said so.

A bad row is skipped and counted under its reason, never fatal: a missing value, FRED's '.',
a non-numeric or non-positive price, an unparsable time, or a time not after the previous row.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

TIME_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y")
PRICE_NAMES = ("close", "adj close", "price", "last", "value", "mid")
TIME_NAMES = ("date", "time", "timestamp", "datetime", "", "unix", "epoch", "ts", "date time")
_EPOCH = re.compile(r"^\d{9,}(\.\d*)?$")  # 9+ digits: Unix seconds (13+: milliseconds)
_TZ_WORD = re.compile(r"\s*(UTC|GMT|Z)$", re.IGNORECASE)


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
    delimiter: str = ","
    descending: bool = False  # the file was newest first; the series is reversed

    def summary(self) -> str:
        order = "; newest first in the file, reversed" if self.descending else ""
        if not self.skipped:
            return f"{self.rows} rows, none skipped{order}"
        reasons = ", ".join(f"{n} {why}" for why, n in self.skipped.most_common())
        return f"{self.rows} rows, {sum(self.skipped.values())} skipped ({reasons}){order}"


def parse_time(text: str) -> float:
    """Unix seconds (UTC) from ISO 8601 (any timezone suffix; none means UTC), the common date
    layouts, or a Unix timestamp in seconds or milliseconds."""
    text = text.strip()
    if _EPOCH.match(text):
        value = float(text)
        return value / 1000.0 if len(text.split(".")[0]) >= 13 else value
    text = _TZ_WORD.sub("+00:00", text)
    try:
        dt = datetime.fromisoformat(text)
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
        t = next((i for i, n in enumerate(lowered) if n in TIME_NAMES), 0)
        if time_column is not None:
            t = find(time_column, "time")
        p = next((i for i, n in enumerate(lowered) if n in PRICE_NAMES), -1)
        candidates = [n for i, n in enumerate(names) if i != t]
        if p < 0 and price_column is None:
            if len(candidates) != 1:
                raise LayoutError(
                    f"cannot tell which column is the price in {names}: the candidates are "
                    f"{', '.join(candidates)}; pick one with --price-column"
                )
            p = names.index(candidates[0])
    if time_column is not None:
        t = find(time_column, "time")
    if price_column is not None:
        p = find(price_column, "price")
    return t, p, layout


def _delimiter(header_line: str) -> str:
    """The separator the header uses most among ``,``, ``;`` and tab (``,`` on a tie)."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def parse_price(raw: str, decimal_comma: bool) -> float:
    """A number as written: ``1234.56``, ``1,234.56`` (quoted), or with ``decimal_comma``
    ``1234,56`` / ``1.234,56``."""
    text = raw.strip().replace("\u00a0", "").replace(" ", "")
    if decimal_comma and "," in text:
        text = text.replace(".", "").replace(",", ".")
    elif "," in text:
        text = text.replace(",", "")
    return float(text)


def load(
    lines: Iterable[str], time_column: str | None = None, price_column: str | None = None
) -> Series:
    it = iter(lines)
    first = next(it, None)
    if first is None or not first.strip():
        raise LayoutError("the file is empty")
    first = first.removeprefix("\ufeff")  # Excel's byte-order mark
    delimiter = _delimiter(first)
    reader = csv.reader(itertools.chain([first], it), delimiter=delimiter)
    header = [h.removeprefix("\ufeff") for h in next(reader)]
    t_idx, p_idx, layout = _detect(header, time_column, price_column)
    decimal_comma = delimiter != ","
    parsed: list[tuple[float, float]] = []
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
        if raw in ("", ".", "NA", "NaN", "nan", "null", "N/A", "#N/A"):
            skipped["missing values"] += 1
            continue
        try:
            price = parse_price(raw, decimal_comma)
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
        parsed.append((when, price))
    # Newest first (more steps down than up): read it oldest first.
    steps = [b[0] - a[0] for a, b in itertools.pairwise(parsed)]
    descending = sum(d < 0 for d in steps) > sum(d > 0 for d in steps)
    if descending:
        parsed.reverse()
    times: list[float] = []
    prices: list[float] = []
    for when, price in parsed:
        if times and when <= times[-1]:
            skipped["out-of-order times"] += 1
            continue
        times.append(when)
        prices.append(price)
    return Series(np.array(times), np.array(prices), header[t_idx].strip() or "(unnamed)",
                  header[p_idx].strip(), layout, rows, skipped, delimiter,
                  descending)  # fmt: skip


def read_series(
    path: Path, time_column: str | None = None, price_column: str | None = None
) -> Series:
    """``load`` over a file; ``.gz`` files are decompressed on the fly."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        return load(f, time_column, price_column)
