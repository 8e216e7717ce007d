"""EngineStore holds history losslessly by default: a block the engine did not tag low-value is
served exact (or not at all), whatever the budget and the decided tier; low-value may go lossy."""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt

from core.engine import EngineStore
from shared.csvseries import read_series
from shared.data import SAMPLE
from tests.core.test_engine_client import decision


def cents(n: int, seed: int = 7) -> npt.NDArray[np.float64]:
    """Prices on a cents grid, from the shipped sample's returns (real quotes are on a grid)."""
    prices = read_series(SAMPLE).prices
    returns = np.diff(np.log(prices))
    rng = np.random.default_rng(seed)
    walk = prices[0] * np.exp(np.cumsum(rng.choice(returns, n)))
    out: npt.NDArray[np.float64] = np.round(walk, 2)
    return out


def test_a_new_store_starts_lossless() -> None:
    s = EngineStore(1 << 20)
    assert s.tier == 64 and s.pool.lossless_first and s.pool.hot_blocks == 1


def test_values_not_tagged_low_value_come_back_exact_under_a_tight_budget() -> None:
    x = cents(16 * 256)
    s = EngineStore(int(x.nbytes * 0.45), chunk=256)  # float64 does not fit; ticks does
    for part in np.split(x, 16):
        assert s.append("px", part, value=0.5)
    assert s.flush()
    # a decision down to the 8-bit tier only says how far low-value blocks may go
    s.enact(msgspec.structs.replace(decision(), precision_bits=8,
                                    memory_budget_bytes=int(x.nbytes * 0.45)))  # fmt: skip
    assert s.nbytes() <= s.budget_bytes < x.nbytes
    assert np.array_equal(s.read("px"), x)  # bit for bit
    assert s.error_bound() == 0.0 and s.pool.compressed > 0 and s.pool.downgraded == 0
    assert s.pool.evicted == 0
    tiers = {b.enc.tier or b.enc.bits for b in s.pool.blocks("px")}
    assert tiers <= {64, "ticks", "lossless"}, tiers
    assert np.array_equal(s.tail("px", 300), x[-300:])


def test_values_tagged_low_value_may_go_lossy_once_lossless_cannot_meet_the_budget() -> None:
    x = cents(16 * 256, seed=11)
    s = EngineStore(1 << 24, chunk=256)
    for i, part in enumerate(np.split(x, 16)):
        s.append("px", part, value=0.2 if i < 12 else 0.5)  # the 12 oldest blocks: low-value
    assert s.flush()
    budget = int(x.nbytes * 0.2)  # below what ticks alone can reach here
    s.enact(msgspec.structs.replace(decision(), precision_bits=8, memory_budget_bytes=budget))
    assert s.nbytes() <= budget
    got = s.read("px")
    blocks = s.pool.blocks("px")
    assert s.pool.downgraded > 0 and s.error_bound() > 0
    assert any(b.enc.bits <= 16 and b.value <= 0.3 for b in blocks)
    # whatever went lossy was tagged low-value; the rest is exact, the newest blocks included
    exact = x[len(x) - len(got) :]  # eviction (last resort) takes the oldest: a suffix is left
    at = 0
    for b in blocks:
        if b.value > 0.3:
            assert b.enc.abs_error == 0.0
            assert np.array_equal(got[at : at + b.enc.n], exact[at : at + b.enc.n])
        at += b.enc.n
    assert at == len(got) and np.array_equal(got[-4 * 256 :], x[-4 * 256 :])


def test_an_append_without_a_value_is_not_low_value() -> None:
    x = cents(8 * 256, seed=3)
    s = EngineStore(1 << 24, chunk=256)
    for part in np.split(x, 8):
        s.append("px", part)
    assert s.flush()
    s.enact(msgspec.structs.replace(decision(), precision_bits=8,
                                    memory_budget_bytes=int(x.nbytes * 0.2)))  # fmt: skip
    assert s.pool.downgraded == 0 and s.error_bound() == 0.0
    got = s.read("px")
    assert len(got) > 0 and np.array_equal(got, x[len(x) - len(got) :])  # exact, or evicted
    assert all(0.3 < b.value < 0.8 for b in s.pool.blocks("px"))
