"""The tiered pool: never over budget, never downgrades high-value data, readers are safe."""

from __future__ import annotations

import threading

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.applier.pool import TieredPool
from shared.precision import platform_top_bits
from tests.support.data import sp500_close

TOP = platform_top_bits()
PRICES = sp500_close()

op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 3), st.floats(0, 1), st.integers(1, 2000)),
    st.tuples(st.just("apply"), st.sampled_from([8, 16, 32, 64, TOP]), st.integers(2_000, 200_000),
              st.booleans()),
)  # fmt: skip


@settings(max_examples=60)
@given(ops=st.lists(op, min_size=1, max_size=40))
def test_budget_and_high_value_invariants_under_random_decisions(ops) -> None:  # type: ignore[no-untyped-def]
    pool = TieredPool(budget_bytes=50_000)
    written_high: set[int] = set()
    t = 0.0
    for o in ops:
        t += 1.0
        if o[0] == "write":
            _, name, value, n = o
            start = int(t * 7) % (PRICES.size - n)
            if (
                pool.write(f"b{name}", PRICES[start : start + n], value=value, now=t)
                and value >= 0.8
            ):
                written_high.add(pool._seq)
        else:
            _, bits, budget, reserve = o
            report = pool.apply(bits, budget, reserve=reserve)
            assert report.bytes_after <= budget
        assert pool.nbytes() <= pool.budget_bytes  # never over budget
        for name in pool.names():
            for b in pool.blocks(name):
                if b.high_value:
                    assert b.enc.bits == TOP  # never downgraded
    assert pool.evicted_high_value == 0 or pool.budget_bytes < 10 * TOP * 2000


def test_lowest_value_oldest_downgraded_first_then_evicted() -> None:
    pool = TieredPool(budget_bytes=10**9, tier=64)
    chunk = PRICES[:1024]
    pool.write("p", chunk, value=0.2, now=1)  # low value, old
    pool.write("p", chunk, value=0.2, now=2)  # low value, newer
    pool.write("p", chunk, value=0.6, now=3)  # normal
    pool.write("p", chunk, value=0.9, now=4)  # high value: top tier
    sizes = [b.enc.nbytes for b in pool.blocks("p")]
    # 5 KiB short: the lowest-value, oldest block steps 64 -> 32 (saves 4096) -> 16 (1984 more)
    pool.apply(64, budget_bytes=sum(sizes) - 5 * 1024)
    assert [b.enc.bits for b in pool.blocks("p")] == [16, 64, 64, TOP]
    # 3 KiB short: that block to 8 bits (saves 1024), then the next oldest low-value one 64 -> 32
    pool.apply(64, budget_bytes=pool.nbytes() - 3 * 1024)
    assert [b.enc.bits for b in pool.blocks("p")] == [8, 32, 64, TOP]
    tight = sum(b.enc.nbytes for b in pool.blocks("p") if b.high_value) + 1100
    report = pool.apply(64, budget_bytes=tight)
    assert pool.nbytes() <= tight and report.evicted >= 1
    assert pool.blocks("p")[-1].high_value and pool.blocks("p")[-1].enc.bits == TOP


def test_reads_return_float64_with_the_bound() -> None:
    pool = TieredPool(budget_bytes=10**8)
    pool.write("spx", PRICES, value=0.5, now=1)
    snap = pool.read("spx")
    assert snap.values.dtype == np.float64 and snap.tiers == (16,)
    assert np.max(np.abs(snap.values - PRICES)) <= snap.abs_error
    assert snap.rel_error <= 1e-4


def test_a_write_that_cannot_fit_is_refused_and_counted() -> None:
    pool = TieredPool(budget_bytes=100)
    assert not pool.write("x", PRICES[:1000], value=0.95, now=1)
    assert pool.rejected_writes == 1 and pool.nbytes() == 0


def test_predictive_reserve_counts_against_the_budget_and_yields_to_data() -> None:
    pool = TieredPool(budget_bytes=1_000_000)
    pool.apply(16, reserve=True)
    assert pool.reserved_bytes > 0
    pool.apply(16, budget_bytes=pool.reserved_bytes // 2)
    assert pool.reserved_bytes == 0  # the bet is dropped before any real data
    pool.apply(16, budget_bytes=1_000_000, reserve=True)
    pool.apply(16, reserve=False)
    assert pool.reserved_bytes == 0


def test_many_readers_one_writer() -> None:
    pool = TieredPool(budget_bytes=400_000)
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                snap = pool.read("p")
                if snap.values.size:
                    assert np.all(np.isfinite(snap.values))
                    assert len(snap.tiers) >= 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for th in threads:
        th.start()
    for i in range(200):
        pool.write("p", PRICES[i : i + 500], value=(i % 10) / 10, now=i)
        if i % 20 == 0:
            pool.apply([8, 16, 32][i % 3], 200_000 + i * 100)
    done.set()
    for th in threads:
        th.join()
    assert not errors and pool.nbytes() <= pool.budget_bytes


@settings(max_examples=80)
@given(ops=st.lists(op, min_size=1, max_size=60))
def test_indexed_pool_makes_the_same_choices_as_the_reference_scan(ops) -> None:  # type: ignore[no-untyped-def]
    """Running totals and heaps change the cost, not the outcome: same blocks, tiers, counters."""
    from tests.support.reference_pool import TieredPool as Reference

    pool, ref = TieredPool(budget_bytes=50_000), Reference(budget_bytes=50_000)
    t = 0.0
    for o in ops:
        t += 1.0
        if o[0] == "write":
            _, name, value, n = o
            start = int(t * 7) % (PRICES.size - n)
            chunk = PRICES[start : start + n]
            assert pool.write(f"b{name}", chunk, value=value, now=t) == ref.write(
                f"b{name}", chunk, value=value, now=t
            )
        else:
            _, bits, budget, reserve = o
            got, want = (
                pool.apply(bits, budget, reserve=reserve),
                ref.apply(bits, budget, reserve=reserve),
            )
            assert (got.bytes_after, got.downgraded, got.evicted, got.evicted_high_value) == (
                want.bytes_after, want.downgraded, want.evicted, want.evicted_high_value)  # fmt: skip
            assert got.error_bound == want.error_bound
        assert pool.names() == ref.names()
        for name in ref.names():
            assert [(b.seq, b.enc.bits) for b in pool.blocks(name)] == [
                (b.seq, b.enc.bits) for b in ref.blocks(name)
            ]
        assert pool.nbytes() == ref.nbytes() and pool.bytes_by_tier() == ref.bytes_by_tier()
        assert pool.error_bound() == ref.error_bound()
    assert (pool.evicted, pool.downgraded, pool.rejected_writes) == (
        ref.evicted, ref.downgraded, ref.rejected_writes)  # fmt: skip


def test_a_decision_that_changes_neither_tier_nor_budget_touches_no_block() -> None:
    pool = TieredPool(budget_bytes=10**9, tier=16)
    for i in range(2000):
        pool.write(f"s{i % 50}", PRICES[:64], value=0.5, now=float(i))
    pool.apply(16, 10**9)
    looked_at = 0
    real = pool._block

    def counting(seq: int):  # type: ignore[no-untyped-def]
        nonlocal looked_at
        looked_at += 1
        return real(seq)

    pool._block = counting  # type: ignore[method-assign]
    report = pool.apply(16, 10**9)
    assert report.downgraded == 0 and report.bytes_after == pool.nbytes()
    assert looked_at <= 1  # the error bound's heap top; no scan of the 2000 blocks
    pool.apply(8, 10**9)  # a tier change touches exactly the blocks above it
    assert looked_at == 1 + 1 + 2000 and {b.enc.bits for b in pool.blocks("s0")} == {8}


def test_a_write_never_succeeds_by_evicting_itself() -> None:
    # High-value data fills the budget; a low-value write that is downgraded to fit and still
    # does not fit must be refused, not "written" and then evicted (the old scan's bug).
    pool = TieredPool(budget_bytes=2000, tier=16)
    pool.write("b0", PRICES[:1], value=1.0, now=1)
    pool.write("b0", PRICES[:116], value=1.0, now=2)
    pool.apply(16, 2000)
    ok = pool.write("b0", PRICES[:769], value=0.0, now=4)
    seqs = [b.seq for b in pool.blocks("b0")]
    assert ok == (pool._seq in seqs)
    assert pool.nbytes() <= pool.budget_bytes  # a refused block leaves nothing behind
