"""Properties of the host-level market aggregate (shared/market_aggregate.py)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shared.market_aggregate import TOP_K, RankedValues, SymbolValue, aggregate

NOW = 1_000.0
LIMIT = 60.0

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
fresh_values = st.dictionaries(
    st.text(alphabet="ABCDEFGHIJ", min_size=1, max_size=3),
    st.builds(SymbolValue, unit, st.floats(min_value=NOW - LIMIT, max_value=NOW)),
    min_size=1,
    max_size=40,
)


@given(fresh_values, st.randoms(use_true_random=False))
def test_order_does_not_matter(values: dict[str, SymbolValue], rnd: random.Random) -> None:
    items = list(values.items())
    rnd.shuffle(items)
    assert aggregate(dict(items), now=NOW, staleness_seconds=LIMIT) == aggregate(
        values, now=NOW, staleness_seconds=LIMIT
    )


@given(fresh_values, st.data())
def test_raising_one_symbol_never_lowers_the_aggregate(
    values: dict[str, SymbolValue], data: st.DataObject
) -> None:
    symbol = data.draw(st.sampled_from(sorted(values)))
    held = values[symbol]
    raised = data.draw(st.floats(min_value=held.value, max_value=1.0))
    before = aggregate(values, now=NOW, staleness_seconds=LIMIT)
    after = aggregate(
        {**values, symbol: SymbolValue(raised, held.event_time)}, now=NOW, staleness_seconds=LIMIT
    )
    assert before is not None and after is not None
    assert after.value >= before.value


@given(fresh_values, unit)
def test_a_stale_symbol_drops_out(values: dict[str, SymbolValue], crash: float) -> None:
    stale = {**values, "STALE": SymbolValue(crash, NOW - LIMIT - 1.0)}
    assert aggregate(stale, now=NOW, staleness_seconds=LIMIT) == aggregate(
        values, now=NOW, staleness_seconds=LIMIT
    )


@given(unit, st.floats(min_value=NOW - LIMIT, max_value=NOW))
def test_one_symbol_is_its_own_value(value: float, t: float) -> None:
    agg = aggregate({"AAPL": SymbolValue(value, t)}, now=NOW, staleness_seconds=LIMIT)
    assert agg is not None
    assert agg.value == value and agg.event_time == t and agg.rule == "single"


@given(st.dictionaries(st.text(min_size=1, max_size=3),
                       st.builds(SymbolValue, unit, st.floats(max_value=NOW - LIMIT - 0.001)),
                       max_size=20))  # fmt: skip
def test_no_fresh_symbol_is_none(values: dict[str, SymbolValue]) -> None:
    assert aggregate(values, now=NOW, staleness_seconds=LIMIT) is None


def test_a_crash_in_a_few_of_many_symbols_is_seen() -> None:
    values = {f"S{i}": SymbolValue(0.1, NOW) for i in range(1000)}
    values.update({f"C{i}": SymbolValue(0.95, NOW) for i in range(TOP_K)})
    agg = aggregate(values, now=NOW, staleness_seconds=LIMIT)
    assert agg is not None
    assert agg.rule == "top-k" and agg.k == TOP_K and abs(agg.value - 0.95) < 1e-9
    assert [s for s, _ in agg.top] == ["C0", "C1", "C2"]
    assert agg.describe().startswith(f"top-{TOP_K} mean of 1005 symbols; highest C0 0.95")


def test_index_wins_over_weights_and_weights_over_the_default() -> None:
    values = {"IDX": SymbolValue(0.2, NOW), "A": SymbolValue(0.9, NOW), "B": SymbolValue(0.1, NOW)}
    weights = {"A": 1.0, "B": 3.0}
    both = aggregate(values, now=NOW, staleness_seconds=LIMIT, weights=weights, index_symbol="IDX")
    assert both is not None and both.rule == "index" and both.value == 0.2
    weighted = aggregate(values, now=NOW, staleness_seconds=LIMIT, weights=weights)
    assert weighted is not None and weighted.rule == "weighted"
    assert abs(weighted.value - (0.9 + 3 * 0.1) / 4) < 1e-12
    # A stale index does not win: the weights do.
    stale_idx = {**values, "IDX": SymbolValue(0.2, NOW - LIMIT - 1)}
    agg = aggregate(stale_idx, now=NOW, staleness_seconds=LIMIT, weights=weights,
                    index_symbol="IDX")  # fmt: skip
    assert agg is not None and agg.rule == "weighted"


@given(st.lists(st.tuples(st.sampled_from("ABCDEFGH"), st.one_of(st.none(), unit)), max_size=60))
def test_ranked_values_kept_as_they_change_equal_the_aggregate(
    updates: list[tuple[str, float | None]],
) -> None:
    ranked, latest = RankedValues(), dict[str, SymbolValue]()
    for symbol, value in updates:  # None: the symbol is dropped (evicted)
        if value is None:
            ranked.remove(symbol)
            latest.pop(symbol, None)
        else:
            ranked.set(symbol, value)
            latest[symbol] = SymbolValue(value, NOW)
    assert ranked.default(NOW) == aggregate(latest, now=NOW, staleness_seconds=LIMIT)
