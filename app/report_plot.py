"""`qas report`: one picture of a replay — price, market entropy, profit potential, scaling factor,
precision tier and memory budget over time, with the triggers marked."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.replay import ReplayResult
from shared.market import entropy_and_profit_series
from shared.tiers import ALL_BITS, TIERS

TRIGGER_STYLE = {
    "market_entropy": ("tab:orange", "^"),
    "profit_harmonic": ("tab:green", "o"),
    "thermal_mirror": ("tab:red", "v"),
    "hardware_observer": ("tab:purple", "s"),
}


def _figure_png(result: ReplayResult, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.series
    t = [datetime.fromtimestamp(x, UTC) for x in s.times]
    entropy, profit = entropy_and_profit_series(s.prices)
    ds = result.decisions
    dt = [datetime.fromtimestamp(d.event_time, UTC) for d in ds]
    fig, axes = plt.subplots(6, 1, figsize=(12, 13), sharex=True, constrained_layout=True)
    axes[0].plot(t, s.prices, color="black", lw=1)
    axes[0].set_ylabel("price")
    axes[0].set_title(title)
    axes[1].plot(t, entropy, color="tab:orange", lw=1)
    axes[1].axhline(0.6, color="grey", ls=":", lw=1)
    axes[1].set_ylabel("market entropy")
    axes[2].plot(t, profit, color="tab:green", lw=1)
    axes[2].axhline(0.6, color="grey", ls=":", lw=1)
    axes[2].set_ylabel("profit potential\n(heuristic)")
    if ds:
        axes[3].step(dt, [d.scaling_factor for d in ds], where="post", color="tab:blue")
        axes[4].step(dt, [d.precision_bits for d in ds], where="post", color="tab:purple")
        axes[5].step(
            dt, [d.memory_budget_bytes / 2**30 for d in ds], where="post", color="tab:brown"
        )
        for trig, (color, marker) in TRIGGER_STYLE.items():
            pts = [(x, d.scaling_factor) for x, d in zip(dt, ds, strict=True) if trig in d.triggers]
            if pts:
                xs, ys = zip(*pts, strict=True)
                axes[3].scatter(xs, ys, color=color, marker=marker, s=18, label=trig, zorder=3)
        axes[3].legend(loc="upper left", fontsize=8)
    axes[3].axhline(1.0, color="grey", ls=":", lw=1)
    axes[3].set_ylabel("scaling factor")
    axes[4].set_ylabel("precision bits")
    axes[4].set_yticks(ALL_BITS, [t.name for t in TIERS])
    axes[5].set_ylabel("memory budget GiB")
    for ax in axes[1:3]:
        ax.set_ylim(-0.02, 1.02)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


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
