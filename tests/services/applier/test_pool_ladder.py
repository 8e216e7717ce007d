"""The pool's storage ladder (lossless_first): hot float64, lossless next, lossy only for blocks
tagged low-value and never below the decided tier, eviction last."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.applier.pool import TieredPool
from shared.codecs import decode
from tests.support.data import sp500_close

PRICES = sp500_close()
CHUNK = np.round(PRICES[:512], 2)  # on a cent grid: ticks compresses it well


def _exact(pool: TieredPool, name: str, blocks: list[np.ndarray]) -> bool:
    got = [decode(b.enc) for b in pool.blocks(name)]
    return len(got) == len(blocks) and all(
        np.array_equal(g, x) for g, x in zip(got, blocks, strict=True)
    )


def test_lossless_compression_comes_first_and_keeps_every_value() -> None:
    pool = TieredPool(budget_bytes=10**9, lossless_first=True, hot_blocks=1)
    for t in range(4):
        assert pool.write("p", CHUNK, value=0.5, now=t)
    assert all(b.enc.bits == 64 and b.enc.tier == "" for b in pool.blocks("p"))  # under budget
    full = pool.nbytes()
    report = pool.apply(16, full - 1)
    assert report.compressed == 1 and report.downgraded == 0 and report.evicted == 0
    assert report.compressed_bytes_after < report.compressed_bytes_before
    assert report.bytes_after == report.bytes_before - (
        report.compressed_bytes_before - report.compressed_bytes_after
    )
    assert _exact(pool, "p", [CHUNK] * 4)
    report = pool.apply(16, 1)  # cannot be met: lossless for all but the hot block, then evict
    assert report.downgraded == 0 and pool.downgraded == 0  # nothing was tagged low-value
    assert pool.compressed == 3 and report.evicted >= 1


def test_lossy_only_for_low_value_blocks_and_never_below_the_decided_tier() -> None:
    def pool_of_four(tier: int) -> TieredPool:
        pool = TieredPool(budget_bytes=10**9, tier=tier, lossless_first=True, hot_blocks=1)
        for t, (name, value) in enumerate([("low", 0.1), ("low", 0.1), ("mid", 0.5), ("mid", 0.5)]):
            pool.write(name, CHUNK, value=value, now=t)
        first = pool.apply(tier, pool.nbytes() - 1)  # the oldest cold block, losslessly
        second = pool.apply(tier, pool.nbytes() - 1)  # the other cold block
        assert (first.compressed, second.compressed) == (1, 1)
        assert first.downgraded == second.downgraded == 0
        return pool

    pool = pool_of_four(8)
    report = pool.apply(8, pool.nbytes() - 1)  # nothing left to compress: lossy, low-value only
    assert report.compressed == 0 and report.downgraded == 1 and report.evicted == 0
    assert [(b.enc.bits, b.enc.tier) for b in pool.blocks("low")] == [(8, ""), (64, "")]
    assert _exact(pool, "mid", [CHUNK, CHUNK])  # ticks, then the hot float64 block

    pool = pool_of_four(16)
    report = pool.apply(16, pool.nbytes() - 1)  # block16 is bigger than this ticks block
    assert report.downgraded == 0 and report.evicted == 1
    assert all(b.enc.bits == 64 for b in pool.blocks("low") + pool.blocks("mid"))


def test_a_decision_tier_does_not_re_encode_what_is_held() -> None:
    pool = TieredPool(budget_bytes=10**9, lossless_first=True)
    pool.write("p", CHUNK, value=0.1, now=1)
    report = pool.apply(8, 10**9)
    assert report.downgraded == 0 and _exact(pool, "p", [CHUNK])


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 2), st.floats(0, 1), st.integers(1, 600), st.integers(3, 200)),
        min_size=1,
        max_size=25,
    )
)
def test_never_over_budget_and_never_lossy_unless_tagged_low_value(
    ops: list[tuple[int, float, int, int]],
) -> None:
    pool = TieredPool(budget_bytes=40_000, lossless_first=True, hot_blocks=1)
    written: dict[int, np.ndarray] = {}
    for t, (name, value, n, kb) in enumerate(ops):
        start = (t * 37) % (PRICES.size - n)
        x = np.round(PRICES[start : start + n], 2)
        if pool.write(f"b{name}", x, value=value, now=float(t)):
            written[pool._seq] = x
        if t % 3 == 2:
            pool.apply(16, kb * 1000)
        assert pool.nbytes() <= pool.budget_bytes
        for buf in pool.names():
            for b in pool.blocks(buf):
                if b.value > pool.low_value_threshold:
                    assert np.array_equal(decode(b.enc), written[b.seq])  # exact, bit for bit
                assert b.enc.bits >= 16  # never below the decided tier


def test_an_archived_block_may_go_to_8_bits_after_lossless_whatever_the_tier() -> None:
    pool = TieredPool(budget_bytes=10**9, tier=64, lossless_first=True, hot_blocks=1)
    for t in range(3):
        pool.write("p", CHUNK, value=0.9, now=t)  # high-value: never lossy while so tagged
    first, second, hot = (b.seq for b in pool.blocks("p"))
    assert pool.archive(first) and not pool.archive(first)  # once
    assert pool.archived == 1 and not pool.archive(10**6)  # an unknown block: False
    report = pool.apply(64, pool.nbytes() - 1)
    assert report.compressed == 1 and report.downgraded == 0  # lossless comes first
    pool.apply(64, pool.nbytes() - 1)  # the second cold block, losslessly
    report = pool.apply(64, pool.nbytes() - 1)
    assert report.downgraded == 1 and report.evicted == 0  # the archived one, at tier 64
    by_seq = {b.seq: b for b in pool.blocks("p")}
    assert by_seq[first].enc.bits == 8 and by_seq[first].archived
    assert by_seq[second].enc.tier == "ticks" and by_seq[hot].enc.tier == ""  # hot: plain
    assert np.array_equal(decode(by_seq[second].enc), CHUNK)  # not archived: exact
    assert np.max(np.abs(decode(by_seq[first].enc) - CHUNK)) <= by_seq[first].enc.abs_error


def test_a_full_ladder_does_not_scan_what_it_holds() -> None:
    """Over budget, a write finds the next block to compress or make lossy from its queues:
    the blocks it looks at do not grow with the blocks and buffers held."""
    small = CHUNK[:64]
    pool = TieredPool(budget_bytes=10**9, tier=8, lossless_first=True, hot_blocks=1)
    for t in range(3000):
        pool.write(f"s{t % 300}", small, value=0.1, now=t)
    pool.apply(8, pool.nbytes() // 4)  # every cold block is compressed, then most go lossy
    pool.apply(8, pool.nbytes() - 30_000)  # so tight that each write below needs every step
    looked = [0]
    block = pool._block

    def counting(seq: int) -> object:
        looked[0] += 1
        return block(seq)

    pool._block = counting  # type: ignore[method-assign]
    for t in range(3000, 3100):
        assert pool.write(f"s{t % 300}", small, value=0.1, now=t)
    assert len(pool) > 2000 and pool.nbytes() <= pool.budget_bytes
    assert pool.evicted > 0 and pool.downgraded > 0  # the writes went down the whole ladder
    # amortised O(log n) each (stale heap entries, compaction); a scan looks at > 2000 per write
    assert looked[0] < 100 * 200
