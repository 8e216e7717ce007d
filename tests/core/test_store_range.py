"""EngineStore.range: values by index, across stored blocks and the pending tail; what the store
no longer holds reads as NaN (a gap), never as made-up values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.engine import EngineStore
from tests.core.test_store_lossless import cents


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=12),
    a=st.integers(0, 9000),
    width=st.integers(0, 3000),
)
def test_range_is_the_appended_values(sizes: list[int], a: int, width: int) -> None:
    x = cents(sum(sizes))
    s = EngineStore(1 << 30, chunk=256)
    at = 0
    for n in sizes:
        s.append("px", x[at : at + n], value=0.5)
        at += n
    got = s.range("px", a, a + width)
    want = np.full(width, np.nan)
    held = x[a : a + width]
    want[: len(held)] = held  # beyond what was appended: not held, NaN
    assert np.array_equal(got, want, equal_nan=True)


def test_compressed_blocks_read_back_bit_for_bit_by_index() -> None:
    x = cents(64 * 256)
    s = EngineStore(int(x.nbytes * 0.4), chunk=256)  # float64 does not fit: blocks go lossless
    for part in np.split(x, 64):
        s.append("px", part, value=0.5)
    assert s.pool.compressed > 0
    for a, b in ((0, 10), (255, 257), (1000, 9000), (16000, 16384)):
        assert s.range("px", a, b).tobytes() == x[a:b].tobytes()


def test_evicted_values_read_as_gaps_and_the_rest_stays_exact() -> None:
    x = cents(64 * 256)
    s = EngineStore(int(x.nbytes * 0.05), chunk=256)  # even lossless does not fit: eviction
    for part in np.split(x, 64):
        s.append("px", part, value=0.5)
    assert s.pool.evicted > 0
    got = s.range("px", 0, len(x))
    held = ~np.isnan(got)
    assert held.any() and not held.all()
    assert not held[0] and held[-1]  # the oldest go first
    assert np.array_equal(got[held], x[held])


def test_the_index_of_evicted_blocks_is_forgotten() -> None:
    x = cents(400 * 256)
    s = EngineStore(int(x.nbytes * 0.02), chunk=256)
    for part in np.split(x, 400):
        s.append("px", part, value=0.5)
    assert len(s._seqs["px"]) <= 2 * len(s.pool.blocks("px")) + 64
