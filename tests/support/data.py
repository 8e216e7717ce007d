"""The real market series beside the repository (../shared/data), for tests and benchmarks."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def series(name: str, column: str) -> np.ndarray:  # type: ignore[type-arg]
    path = DATA / f"{name}.csv.gz"
    if not path.exists():
        pytest.fail(f"real series missing at {path}: the suite expects ../shared beside the repo")
    with gzip.open(path, "rt") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        try:
            out.append(float(r[column]))
        except ValueError:  # FRED writes '.' for a missing day
            out.append(float("nan"))
    return np.array(out)


def sp500_close() -> np.ndarray:  # type: ignore[type-arg]
    return series("sp500", "Close")


def wti() -> np.ndarray:  # type: ignore[type-arg]
    return series("wti", "DCOILWTICO")


def tick_like(n: int = 50_000, seed: int = 3) -> np.ndarray:  # type: ignore[type-arg]
    """A random walk in 0.01 ticks around 43 210.55, the price the seed's float16 example breaks."""
    rng = np.random.default_rng(seed)
    return 43_210.55 + np.cumsum(rng.integers(-3, 4, n)) * 0.01
