"""The Grafana dashboard, generated from one panel table so its queries follow the metric names.

``python -m app.dashboard`` writes deploy/grafana/dashboards/qas.json (checked in; a test
regenerates it and compares). The same table drives the README's rendering of the panels
(app/dashboard_render.py) and the real-Prometheus test, which evaluates every query.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "qas-prometheus"}
OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "qas.json"
HOST = 'host=~"$host"'
# Series without a host label get it from qas_build_info (one per QAS process).
BY_HOST = f"on (instance) group_left (host) qas_build_info{{{HOST}}}"
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "state-timeline", "stat"
    description: str = ""


def t(expr: str, legend: str = "{{host}}") -> Target:
    return Target(expr, legend)


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Decisions", (
        Panel("Scaling factor", (t(f"qas_scaling_factor{{{HOST}}}"),)),
        Panel("Memory adjustment", (t(f"qas_memory_adjustment{{{HOST}}}"),)),
        Panel("Memory budget", (t(f"qas_memory_budget_bytes{{{HOST}}}"),), "bytes"),
        Panel("Precision tier (bytes per value)", (t(f"qas_precision_bytes{{{HOST}}}"),),
              "bytes"),
        Panel("Batch size", (t(f"qas_batch_size{{{HOST}}}"),)),
        Panel("Workers", (t(f"qas_workers{{{HOST}}}"),)),
        Panel("Confidence", (t(f"qas_confidence_ratio{{{HOST}}}"),), "percentunit"),
        Panel("Quantum state", (t(f"qas_quantum_state{{{HOST}}} == 1", "{{host}} {{state}}"),),
              kind="state-timeline"),
    )),
    ("Inputs", (
        Panel("Market entropy", (t(f"qas_market_entropy_ratio{{{HOST}}}"),), "percentunit"),
        Panel("Profit potential", (t(f"qas_profit_potential_ratio{{{HOST}}}"),),
              "percentunit"),
        Panel("Thermal state (1 = throttle point)", (t(f"qas_thermal_state_ratio{{{HOST}}}"),),
              "percentunit"),
        Panel("Input age", (t(f"qas_input_age_seconds{{{HOST}}}", "{{host}} {{input}}"),), "s"),
    )),
    ("Pool", (
        Panel("Pool bytes per tier against the budget", (
            t(f"sum by (host, pool, tier) (qas_pool_bytes * {BY_HOST})",
              "{{pool}} tier {{tier}}"),
            t(f"qas_pool_budget_bytes * {BY_HOST}", "{{pool}} budget"),
        ), "bytes"),
        Panel("Pool error bound", (t(f"qas_pool_error_bound_ratio * {BY_HOST}", "{{pool}}"),),
              "percentunit"),
    )),
    ("Pipeline", (
        Panel("Decision to apply latency", (
            t("histogram_quantile(0.5, sum by (le) (rate(qas_decision_apply_latency_seconds_"
              f"bucket[{RATE}]) * {BY_HOST}))", "p50"),
            t("histogram_quantile(0.99, sum by (le) (rate(qas_decision_apply_latency_seconds_"
              f"bucket[{RATE}]) * {BY_HOST}))", "p99"),
        ), "s"),
        Panel("Decisions by trigger", (
            t(f"sum by (trigger) (rate(qas_decisions_total[{RATE}]) * {BY_HOST})",
              "{{trigger}}"),
        ), "ops"),
        Panel("Published and held by the stabiliser", (
            t(f"rate(qas_decisions_published_total{{{HOST}}}[{RATE}])", "{{host}} published"),
            t(f"rate(qas_decisions_held_total{{{HOST}}}[{RATE}])", "{{host}} held"),
        ), "ops"),
        Panel("Since the last decision", (t(f"qas_last_decision_age_seconds{{{HOST}}}"),), "s"),
        Panel("Dead letters", (
            t(f"sum by (service) (increase(qas_dead_letters_total[{RATE}]) * {BY_HOST})",
              "{{service}}"),
        )),
        Panel("Consumer lag", (
            t(f"sum by (group, topic) (qas_consumer_lag_records * {BY_HOST})",
              "{{group}} {{topic}}"),
        )),
        Panel("Kafka connected", (t(f"qas_kafka_connected * {BY_HOST}", "{{instance}}"),),
              kind="stat"),
        Panel("Apply results", (
            t(f"sum by (result) (rate(qas_applies_total[{RATE}]) * {BY_HOST})", "{{result}}"),
        ), "ops"),
    )),
    ("Hardware", (
        Panel("Temperatures", (t(f"qas_temperature_celsius{{{HOST}}}", "{{host}} {{sensor}}"),),
              "celsius"),
        Panel("GPU memory", (
            t(f"qas_gpu_memory_used_bytes{{{HOST}}}", "{{host}} gpu{{gpu}} used"),
            t(f"qas_gpu_memory_total_bytes{{{HOST}}}", "{{host}} gpu{{gpu}} total"),
        ), "bytes"),
        Panel("Fingerprint changes", (t(f"qas_hardware_fingerprint_changes_total{{{HOST}}}"),),
              kind="stat"),
    )),
)  # fmt: skip

# Fingerprint changes (quantum collapses) drawn on every panel.
ANNOTATION_EXPR = f"increase(qas_hardware_fingerprint_changes_total{{{HOST}}}[{RATE}]) > 0"

WIDTH, HEIGHT, PER_LINE = 6, 7, 4


def layout() -> list[tuple[str, list[tuple[Panel, dict[str, int]]]]]:
    """Rows with each panel's gridPos (24 columns; four panels a line)."""
    y = 0
    out: list[tuple[str, list[tuple[Panel, dict[str, int]]]]] = []
    for title, panels in ROWS:
        y += 1  # the row header
        placed = []
        for i, p in enumerate(panels):
            placed.append((p, {"x": (i % PER_LINE) * WIDTH, "y": y + (i // PER_LINE) * HEIGHT,
                               "w": WIDTH, "h": HEIGHT}))  # fmt: skip
        out.append((title, placed))
        y += ((len(panels) + PER_LINE - 1) // PER_LINE) * HEIGHT
    return out


def queries() -> list[str]:
    return [tg.expr for _, panels in ROWS for p in panels for tg in p.targets]


def _panel(pid: int, p: Panel, pos: dict[str, int]) -> dict[str, Any]:
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": pos,
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": tg.expr,
                "legendFormat": tg.legend,
                "range": True,
            }
            for i, tg in enumerate(p.targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid = 1
    for title, placed in layout():
        y = placed[0][1]["y"] - 1
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})  # fmt: skip
        pid += 1
        for p, pos in placed:
            panels.append(_panel(pid, p, pos))
            pid += 1
    return {
        "uid": "qas-overview",
        "title": "QAS: Quantum Auto-Scaling",
        "description": "Generated by app/dashboard.py; edit the panel table there, not this file.",
        "tags": ["qas"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "host",
                    "label": "host",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {"query": "label_values(qas_build_info, host)", "refId": "hosts"},
                    "definition": "label_values(qas_build_info, host)",
                    "refresh": 2,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": False,
                    "current": {"text": "All", "value": "$__all"},
                    "sort": 1,
                }
            ]
        },
        "annotations": {
            "list": [
                {
                    "name": "Hardware changes",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "iconColor": "orange",
                    "expr": ANNOTATION_EXPR,
                    "step": "60s",
                    "titleFormat": "hardware changed on {{host}}",
                    "textFormat": "quantum collapse",
                    "useValueForTime": False,
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
