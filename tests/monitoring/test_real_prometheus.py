"""The dashboard and the rules against a real Prometheus scraping a real `qas run`.

`qas run --market sample` (the pipeline on the embedded bus, fed the shipped S&P 500 sample as
market ticks, with a fake NVML standing in for one GPU so the GPU panels have a source) serves
/metrics on a free port; a real Prometheus server (own port, own temporary storage, QAS's
rules.yml) scrapes it every second. Every dashboard panel query and every recording rule must
return data, every metric a query names must exist, and a query naming an unknown metric must
fail the same check. With QAS_DASHBOARD_DUMP=FILE the panels' series are saved for the README's
rendering (app/dashboard_render.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.dashboard import ANNOTATION_EXPR, ROWS, queries
from tests.support.prometheus import PrometheusServer, binary, free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
HOST = "prom-test"
WINDOW = "30s"  # stands in for Grafana's $__rate_interval
LAUNCH = (
    "import sys\n"
    "import app.runtime as runtime\n"
    "from tests.support.fake_nvml import FakeNvml, RTX_3060_TI\n"
    "runtime.load_pynvml = lambda: FakeNvml([RTX_3060_TI])\n"
    "from app.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def concrete(expr: str) -> str:
    return expr.replace("$host", HOST).replace("$__rate_interval", WINDOW)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:qas|process)_[a-z0-9_]+)\b", expr))


@pytest.fixture(scope="module")
def qas_port() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "run", "--market", "sample", "--market-rate", "50",
         "--sensor-interval", "0.5", "--metrics-port", str(port), "--host-id", HOST,
         "--duration", "240"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "qas run never served /metrics"
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def prometheus(qas_port: int) -> Iterator[PrometheusServer]:
    binary("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [{"job_name": "qas",
                            "static_configs": [{"targets": [f"127.0.0.1:{qas_port}"]}]}],
    }  # fmt: skip
    server = PrometheusServer(yaml.safe_dump(config))
    shutil.copy(RULES, server.dir / "rules.yml")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def returns_data(prom: PrometheusServer, expr: str) -> list[Any]:
    body = prom.query(expr)
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[Any] = body["data"]["result"]
    assert result, f"no data for {expr}"
    return result


def until_all_return_data(prom: PrometheusServer, exprs: list[str], seconds: float) -> None:
    """Prometheus needs a few scrapes before rates have two points: poll, then assert."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            for expr in exprs:
                returns_data(prom, expr)
            return
        except AssertionError:
            time.sleep(1)
    for expr in exprs:
        returns_data(prom, expr)


def recording_rules() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r["record"] for g in groups for r in g["rules"] if "record" in r]


def test_every_panel_query_and_recording_rule_returns_data(prometheus: PrometheusServer) -> None:
    panel_queries = [concrete(q) for q in queries()]
    until_all_return_data(prometheus, panel_queries + recording_rules(), seconds=90)
    for expr in panel_queries:
        for sample in returns_data(prometheus, expr):
            if "host" in sample["metric"]:
                assert sample["metric"]["host"] == HOST, expr
    # Every metric any query, the annotation or a rule names exists (the annotation's "> 0"
    # keeps it empty until hardware changes, so its metric is checked by name).
    named = set().union(*(metric_names(q) for q in [*queries(), ANNOTATION_EXPR,
                                                    RULES.read_text()]))  # fmt: skip
    for name in sorted(named):
        returns_data(prometheus, f'count({{__name__="{name}"}})')
    # Rules and alerts evaluate without error (none fires on a healthy run but the target).
    rules = prometheus.api("rules")["data"]["groups"]
    health = {r["name"]: (r["health"], r.get("lastError", "")) for g in rules for r in g["rules"]}
    assert len(health) == len(recording_rules()) + 10  # the ten alerts
    assert all(h == "ok" for h, _ in health.values()), health
    firing = [a for a in prometheus.api("alerts")["data"]["alerts"] if a["state"] == "firing"]
    assert firing == [], firing
    dump = os.environ.get("QAS_DASHBOARD_DUMP")
    if dump:  # for the README's rendering: let the run go on a while first
        time.sleep(float(os.environ.get("QAS_DASHBOARD_SECONDS", "0")))
        save_panels(prometheus, Path(dump))


def test_a_query_naming_an_unknown_metric_fails(prometheus: PrometheusServer) -> None:
    returns_data(prometheus, concrete(queries()[0]))  # the server has data ...
    with pytest.raises(AssertionError, match="no data"):  # ... but none for a made-up name
        returns_data(prometheus, f'qas_scaling_factr{{host=~"{HOST}"}}')


def fill(legend: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: labels.get(m[1], ""), legend)


def save_panels(prom: PrometheusServer, out: Path) -> None:
    end = time.time()
    panels: dict[str, list[dict[str, Any]]] = {}
    for _, row in ROWS:
        for panel in row:
            series = []
            for target in panel.targets:
                body = prom.api("query_range", query=concrete(target.expr),
                                start=str(end - 120), end=str(end), step="1")  # fmt: skip
                for s in body["data"]["result"]:
                    series.append({"legend": fill(target.legend, s["metric"]),
                                   "values": s["values"]})  # fmt: skip
            panels[panel.title] = series
    out.write_text(json.dumps({"host": HOST, "panels": panels}))
