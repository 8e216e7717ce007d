"""`bench codecs`: its rows carry the issue's fields, measure what they say, and its verdicts
compare against the stated targets (no timing is asserted)."""

from __future__ import annotations

import numpy as np

from bench import codecs

FIELDS = {"series", "tier", "block", "bytes_per_value", "max_abs_error", "encode_mb_s",
          "decode_mb_s", "memcpy_mb_s"}  # fmt: skip


def test_every_tier_has_a_row_with_the_fields_and_lossless_rows_are_exact() -> None:
    x = codecs.cents_bootstrap(np.array([100.0, 101.5, 99.25, 100.75]), 5000)
    assert np.array_equal(x, np.round(x, 2)) and x.min() >= 99.25 and x.max() <= 101.5
    rows = codecs.rows_for("cents", x, quick=True)
    tiers = [(r["tier"], r["block"]) for r in rows]
    assert tiers == [("float64", None), ("ticks", 256), ("ticks", 4096), ("lossless", 256),
                     ("lossless", 4096), ("float32", None), ("block16", 256), ("block8", 256),
                     ("float16", None)]  # fmt: skip
    for r in rows:
        assert FIELDS <= set(r)
        assert r["memcpy_mb_s"] > 0 and r["encode_mb_s"] > 0 and r["decode_mb_s"] > 0  # type: ignore[operator]
    by = {(r["tier"], r["block"]): r for r in rows}
    for tier in codecs.LOSSLESS:
        assert by[(tier, 4096)]["bit_exact"] and by[(tier, 4096)]["max_abs_error"] == 0.0
        assert float(by[(tier, 4096)]["bytes_per_value"]) < 8.0  # type: ignore[arg-type]
    assert float(by[("block8", 256)]["max_abs_error"]) > 0  # type: ignore[arg-type]


def test_verdicts_compare_with_the_stated_limits() -> None:
    def row(series: str, tier: str, bpv: float, dec: float, exact: bool = True) -> codecs.Row:
        return {"series": series, "tier": tier, "block": 4096, "bytes_per_value": bpv,
                "max_abs_error": 0.0 if exact else 0.01, "bit_exact": exact, "decode_mb_s": dec}  # fmt: skip

    rows = [row("cents-bootstrap", "ticks", 1.85, 500), row("cents-bootstrap", "lossless", 1.86, 900),
            row("yahoo-round6-f32", "ticks", 3.5, 1), row("yahoo-round6-f32", "lossless", 3.6, 1),
            row("file:a.csv", "ticks", 3.0, 1), row("file:a.csv", "lossless", 3.0, 1, exact=False),
            row("file:b.csv", "ticks", 7.9, 1), row("file:b.csv", "lossless", 7.0, 1)]  # fmt: skip
    got = [v["met"] for v in codecs.verdicts(rows, ["file:a.csv", "file:b.csv"])]
    assert got == [True, True, False, False, False, True]
    slow = codecs.verdicts([row("cents-bootstrap", "ticks", 1.7, 499)], [])
    assert [v["met"] for v in slow] == [False]
