"""`qas report`: one picture of a replay a trader can read — price, market entropy, profit
potential, scaling factor, precision tier and memory budget over the whole file, with the
thresholds labelled, the triggers as bands and a caption saying how to read each panel."""

from __future__ import annotations

import base64
import html
import io
import itertools
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.replay import ReplayResult
from shared.config import DecisionConstants
from shared.market import estimate_series
from shared.tiers import ALL_BITS, TIERS

TRIGGER_STYLE = {  # trigger -> (colour, what it means to a trader)
    "market_entropy": ("tab:orange", "market entropy (volatility high)"),
    "profit_harmonic": ("tab:green", "profit harmonic (trend strong)"),
    "thermal_mirror": ("tab:red", "thermal mirror (machine hot)"),
    "hardware_observer": ("tab:purple", "hardware observer (machine changed)"),
}
TIER_COLOUR = {8: "#c6dbef", 16: "#6baed6", 32: "#2171b5", 64: "#08519c", 80: "#08306b"}
F64 = npt.NDArray[np.float64]
PERIODS = 120  # the precision band: the tier held longest in each of about 120 periods

CAPTION = (
    "How to read this. Each decision holds until the next one, so every panel below the "
    "second is a step through time. "
    "(1) Price, with the periods of a strong trend shaded green. "
    "(2) Market entropy: how wild the market is against its own recent history (0 calmest, "
    "1 wildest); above {band:.1f} QAS scales up, from {high:.1f} it also keeps one more bit of "
    "precision. Grey: warm-up, too little history, decisions not applied. "
    "(3) Profit potential, a heuristic of trend strength (a steady move up or down reads high, "
    "chop low); above {band:.1f} QAS scales up; from {high:.1f} prices are kept at the top "
    "precision, at or below {low:.1f} at 8 bits. "
    "(4) The scaling factor QAS decided (1.0 = no change), with bands where a trigger fired. "
    "(5) The precision tier held longest in each period. (6) The memory budget."
)


def _held(times: F64, when: F64, values: npt.NDArray[Any]) -> F64:
    """The value in effect at each of ``times`` (the last decision at or before it; NaN before
    the first)."""
    idx = np.searchsorted(when, times, side="right") - 1
    out = np.where(idx >= 0, values[np.clip(idx, 0, None)], np.nan)
    return out


def _figure_png(result: ReplayResult, title: str) -> bytes:
    import matplotlib.pyplot as plt

    fig = build_figure(result, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", pad_inches=0.2)
    plt.close(fig)
    return buf.getvalue()


def build_figure(result: ReplayResult, title: str) -> Any:
    """The report's matplotlib Figure (six panels and the caption)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    c = DecisionConstants()
    s = result.series
    t = np.array([datetime.fromtimestamp(x, UTC) for x in s.times])
    est = estimate_series(s.prices, s.times)
    entropy, profit = est.entropy, est.profit
    ds = result.decisions
    when = np.array([d.event_time for d in ds], dtype=np.float64)
    fig, axes = plt.subplots(
        6, 1, figsize=(12, 15), sharex=True, height_ratios=[2.2, 1.2, 1.2, 1.6, 1.0, 1.0],
        layout="constrained",
    )  # fmt: skip
    fig.suptitle(f"{title}: {s.prices.size} rows, {len(ds)} decisions, {result.applied} applied",
                 fontsize=13)  # fmt: skip
    ax = axes[0]
    ax.plot(t, s.prices, color="black", lw=1)
    ax.fill_between(t, 0, 1, where=profit >= c.high_value_threshold, color="tab:green", alpha=0.15,
                    transform=ax.get_xaxis_transform(), step="post", lw=0,
                    label=f"strong trend (profit heuristic >= {c.high_value_threshold:.1f})")  # fmt: skip
    ax.set_ylabel("price")
    ax.legend(loc="upper left", fontsize=8)
    warm = est.confidence < 1.0
    for ax, series, label in ((axes[1], entropy, "market entropy"),
                              (axes[2], profit, "profit potential\n(heuristic)")):  # fmt: skip
        ax.plot(t, series, color="tab:orange" if ax is axes[1] else "tab:green", lw=0.8)
        ax.fill_between(t, 0, 1, where=warm, color="grey", alpha=0.2, step="post", lw=0,
                        transform=ax.get_xaxis_transform(), label="warm-up")  # fmt: skip
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(label)
    lines = [
        (axes[1], c.tensor_harmonic_threshold, "scale up above"),
        (axes[1], c.high_volatility_threshold, "precision +1 tier from"),
        (axes[2], c.tensor_harmonic_threshold, "scale up above"),
        (axes[2], c.high_value_threshold, "top precision from"),
        (axes[2], c.low_value_threshold, "8-bit at or below"),
    ]
    for ax, y, text in lines:
        ax.axhline(y, color="dimgrey", ls=":", lw=1)
        ax.annotate(f"{text} {y:.1f}", (1.0, y), xycoords=("axes fraction", "data"),
                    xytext=(-4, 2), textcoords="offset points", ha="right", va="bottom",
                    fontsize=8, color="dimgrey",
                    bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})  # fmt: skip
    axes[1].legend(loc="upper left", fontsize=8)
    ax = axes[3]
    if ds:
        factor = _held(s.times, when, np.array([d.scaling_factor for d in ds]))
        ax.plot(t, factor, color="tab:blue", lw=1.2, drawstyle="steps-post", label="scaling factor")
        handles = []
        for trig, (colour, meaning) in TRIGGER_STYLE.items():
            fired = _held(s.times, when, np.array([trig in d.triggers for d in ds], dtype=float))
            if np.nansum(fired):
                ax.fill_between(t, 0, 1, where=fired == 1.0, color=colour, alpha=0.18,
                                transform=ax.get_xaxis_transform(), step="post", lw=0)  # fmt: skip
                handles.append(Patch(color=colour, alpha=0.35, label=meaning))
        ax.legend(handles=[*ax.get_legend_handles_labels()[0], *handles], loc="upper left",
                  fontsize=8, ncols=3)  # fmt: skip
        bits = _held(s.times, when, np.array([d.precision_bits for d in ds], dtype=float))
        edges = np.linspace(s.times[0], s.times[-1], PERIODS + 1)
        for a, b in itertools.pairwise(edges):
            inside = bits[(s.times >= a) & (s.times <= b) & ~np.isnan(bits)]
            if inside.size:
                values, counts = np.unique(inside, return_counts=True)
                held = int(values[np.argmax(counts)])
                start, stop = (datetime.fromtimestamp(x, UTC) for x in (a, b))
                axes[4].fill_between([start, stop], ALL_BITS.index(held) - 0.4,
                                     ALL_BITS.index(held) + 0.4, color=TIER_COLOUR[held], lw=0)  # fmt: skip
        budget = _held(s.times, when, np.array([d.memory_budget_bytes / 2**30 for d in ds]))
        axes[5].plot(t, budget, color="tab:brown", drawstyle="steps-post")
    ax.axhline(1.0, color="dimgrey", ls=":", lw=1)
    ax.annotate("1.0 = no change", (1.0, 1.0), xycoords=("axes fraction", "data"), xytext=(-4, 2),
                textcoords="offset points", ha="right", va="bottom", fontsize=8, color="dimgrey")  # fmt: skip
    ax.set_ylabel("scaling factor")
    axes[4].set_yticks(range(len(ALL_BITS)), [f"{x.name} ({x.bits})" for x in TIERS])
    axes[4].set_ylim(-0.6, len(ALL_BITS) - 0.4)
    axes[4].set_ylabel("precision tier\n(held longest\nper period)")
    axes[5].set_ylabel("memory budget\nGiB")
    axes[5].set_xlim(t[0], t[-1])  # the whole file, whatever the decisions cover
    locator = axes[5].xaxis.get_major_locator()
    axes[5].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    caption = CAPTION.format(band=c.tensor_harmonic_threshold, high=c.high_value_threshold,
                             low=c.low_value_threshold)  # fmt: skip
    fig.text(0.01, 0.0, textwrap.fill(caption, 170), fontsize=8.5, va="top", ha="left")
    return fig


def write_report(result: ReplayResult, path: Path, title: str = "QAS replay") -> None:
    png = _figure_png(result, title)
    if path.suffix.lower() == ".png":
        path.write_bytes(png)
        return
    rows = "\n".join(
        f"<tr><td>{datetime.fromtimestamp(d.event_time, UTC).date()}</td><td>{d.scaling_factor:.2f}</td>"
        f"<td>{d.precision_tier}</td><td>{html.escape(', '.join(d.triggers) or '-')}</td>"
        f"<td>{html.escape(' '.join(d.reasons))}</td></tr>"
        for d in result.decisions[:500]
    )
    factors = (
        np.array([d.scaling_factor for d in result.decisions])
        if result.decisions
        else np.array([1.0])
    )
    path.write_text(f"""<!doctype html><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 8px;vertical-align:top;font-size:13px}}</style>
<h1>{html.escape(title)}</h1>
<p>{result.series.prices.size} rows ({html.escape(result.series.summary())}); {len(result.decisions)} decisions,
{result.applied} applied; scaling factor {factors.min():.2f}&ndash;{factors.max():.2f}.</p>
<img alt="replay" style="max-width:100%" src="data:image/png;base64,{base64.b64encode(png).decode()}">
<h2>Decisions</h2><table><tr><th>time</th><th>factor</th><th>precision</th><th>triggers</th><th>why</th></tr>
{rows}</table>
""")
