"""EngineStore: an infinity is refused whole and leaves the series as it was; NaN is a gap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.engine import EngineStore, StoreValueError


@pytest.mark.parametrize("n", [3, 300])  # below and above one chunk: refused at once either way
def test_an_append_with_inf_is_refused_whole_and_the_series_stays_usable(n: int) -> None:
    s = EngineStore(1 << 20, tier=64, chunk=256)
    s.append("a", np.arange(100.0))
    before, pending = s.read("a").copy(), s.nbytes()
    bad = np.full(n, 5.0)
    bad[n // 2] = -math.inf
    with pytest.raises(StoreValueError, match="1 infinite value"):
        s.append("a", bad)
    assert np.array_equal(s.read("a"), before) and s.nbytes() == pending and s.refused_appends == 1
    for i in range(5):  # later good appends work, through flushes
        assert s.append("a", np.arange(100.0) + i)
    assert s.flush()
    assert len(s.read("a")) == 600 and np.isfinite(s.read("a")).all()


def test_nan_is_stored_as_a_gap_and_counted_per_series() -> None:
    s = EngineStore(1 << 20, tier=64, chunk=4)
    s.append("a", [1.0, math.nan, 3.0, math.nan, 5.0])
    s.append("b", [math.nan])
    s.append("c", [1.0])
    assert (s.gaps("a"), s.gaps("b"), s.gaps("c"), s.gaps()) == (2, 1, 0, 3)
    got = s.read("a")
    assert len(got) == 5 and np.isnan(got[[1, 3]]).all() and got[4] == 5.0


def test_append_copies_so_the_engine_may_reuse_its_buffer() -> None:
    s = EngineStore(1 << 20, tier=64, chunk=1000)
    buf = np.ones(10)
    s.append("a", buf)
    buf[:] = 7.0
    assert np.array_equal(s.read("a"), np.ones(10))


def test_finite_values_whose_sum_overflows_are_accepted() -> None:
    s = EngineStore(1 << 20, tier=64, chunk=1000)
    assert s.append("a", [1e308, 1e308, -1e308])
    assert s.gaps("a") == 0 and s.refused_appends == 0
    assert np.array_equal(s.read("a"), [1e308, 1e308, -1e308])
