"""A rendering of the Grafana dashboard's panels with matplotlib, for the README.

Grafana cannot run where QAS is built, so this draws the same rows and panels (app/dashboard.py
layout) from series saved by the real-Prometheus test (QAS_DASHBOARD_DUMP=FILE). It is a
rendering of the data, not a Grafana screenshot.

    QAS_DASHBOARD_DUMP=/tmp/panels.json QAS_DASHBOARD_SECONDS=60 \\
        .venv/bin/python -m pytest tests/monitoring -k panel
    .venv/bin/python -m app.dashboard_render /tmp/panels.json docs/dashboard.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from app.dashboard import HEIGHT, layout

UNIT_SCALE = {"bytes": (1 / (1 << 20), "MiB")}


def draw(dump: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = layout()
    bottom = max(pos["y"] + pos["h"] for _, placed in rows for _, pos in placed)
    unit_h = 0.42  # inches per grid unit of height
    fig = plt.figure(figsize=(20, bottom * unit_h + 0.8), facecolor="#111217")
    total = bottom + 2

    def box(x: int, y: int, w: int, h: int) -> tuple[float, float, float, float]:
        pad = 0.35
        return ((x + pad) / 24, 1 - (y + 1.5 + h - pad) / total + 0.01,
                (w - 2 * pad) / 24, (h - 2 * pad - 0.6) / total)  # fmt: skip

    fig.text(0.01, 1 - 0.6 / total, f"QAS: Quantum Auto-Scaling — host {dump['host']}  "
             "(a matplotlib rendering of the Grafana dashboard's panels, from a real Prometheus "
             "scraping qas run --market sample; not a Grafana screenshot)",
             color="white", fontsize=12, va="center")  # fmt: skip
    for title, placed in rows:
        y_row = placed[0][1]["y"] - 1
        fig.text(0.005, 1 - (y_row + 2.1) / total, title, color="#ccccdc", fontsize=13,
                 weight="bold")  # fmt: skip
        for panel, pos in placed:
            ax = fig.add_axes(box(pos["x"], pos["y"], pos["w"], HEIGHT))
            ax.set_facecolor("#181b1f")
            ax.set_title(panel.title, color="#ccccdc", fontsize=9, loc="left")
            ax.tick_params(colors="#8e8e8e", labelsize=7)
            for spine in ax.spines.values():
                spine.set_color("#2c3235")
            series = dump["panels"].get(panel.title, [])
            scale, unit = UNIT_SCALE.get(panel.unit, (1.0, ""))
            peak = max((abs(float(v)) for s in series for _, v in s["values"]), default=0.0)
            if peak < 1 << 20:  # small byte counts (bytes per value) stay in bytes
                scale, unit = 1.0, ""
            if panel.kind == "stat":
                last = [float(s["values"][-1][1]) for s in series if s["values"]]
                text = ", ".join(f"{v:g}" for v in last) or "no data"
                ax.text(0.5, 0.5, text, color="#73bf69", fontsize=22, ha="center",
                        va="center", transform=ax.transAxes)  # fmt: skip
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            t0 = min((float(s["values"][0][0]) for s in series if s["values"]), default=0.0)
            for s in series:
                xs = [float(t) - t0 for t, _ in s["values"]]
                ys = [float(v) * scale for _, v in s["values"]]
                ax.plot(xs, ys, linewidth=1.2, label=s["legend"])
            if unit:
                ax.set_ylabel(unit, color="#8e8e8e", fontsize=7)
            if series:
                ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f",
                          labelcolor="#ccccdc", edgecolor="#2c3235")  # fmt: skip
            ax.set_xlabel("seconds", color="#8e8e8e", fontsize=7)
    fig.savefig(out, dpi=72, facecolor=fig.get_facecolor())
    plt.close(fig)


def main(argv: list[str]) -> int:
    dump = json.loads(Path(argv[0]).read_text())
    draw(dump, Path(argv[1]))
    print(f"wrote {argv[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
