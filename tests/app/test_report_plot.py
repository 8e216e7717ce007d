"""The report a trader reads: caption, factor as a line with trigger bands, precision as a band per
period, labelled thresholds, and an x-axis that covers the whole file (a monthly series too)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D

from app.replay import replay
from app.report_plot import build_figure
from app.runtime import Options
from shared.csvseries import read_series
from tests.app.test_replay import _monthly_file


@pytest.fixture(scope="module")
def monthly_result(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = _monthly_file(tmp_path_factory.mktemp("report"))
    return asyncio.run(replay(Options(metrics_port=None), read_series(path)))


def test_report_reads_like_a_chart_for_a_trader(monthly_result) -> None:  # type: ignore[no-untyped-def]
    fig = build_figure(monthly_result, "QAS replay of sp500 month ends")
    try:
        _price, entropy, profit, factor, precision, budget = fig.axes
        caption = fig.texts[-1].get_text().replace("\n", " ")
        assert caption.startswith("How to read this.") and "(4) The scaling factor" in caption
        # the whole file on the x-axis, and every step held to the file's last row
        s = monthly_result.series
        lo, hi = budget.get_xlim()
        first, last = (
            mdates.date2num(datetime.fromtimestamp(x, UTC)) for x in (s.times[0], s.times[-1])
        )
        assert (lo, hi) == pytest.approx((first, last))
        held = [ln for ln in factor.get_lines() if ln.get_label() == "scaling factor"]
        assert len(held) == 1 and held[0].get_drawstyle() == "steps-post"
        assert mdates.num2date(held[0].get_xdata(orig=False)[-1]) == datetime.fromtimestamp(
            s.times[-1], UTC
        )
        assert not [c for c in factor.collections if isinstance(c, PathCollection)]  # no dots
        legend = [t.get_text() for t in factor.get_legend().get_texts()]
        assert "market entropy (volatility high)" in legend
        labels = [t.get_text() for ax in (entropy, profit, factor) for t in ax.texts]
        assert {"scale up above 0.6", "precision +1 tier from 0.8", "top precision from 0.8",
                "8-bit at or below 0.3", "1.0 = no change"} <= set(labels)  # fmt: skip
        # precision: one band per period, not a line flipping between tiers
        assert not [ln for ln in precision.get_lines() if isinstance(ln, Line2D)]
        assert 20 <= len(precision.collections) <= 120
        assert "warm-up" in [t.get_text() for t in entropy.get_legend().get_texts()]
    finally:
        plt.close(fig)


def test_report_png_written(monthly_result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.report_plot import write_report

    out = tmp_path / "r.png"
    write_report(monthly_result, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 50_000
