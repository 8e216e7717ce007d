"""The dashboard JSON is what app/dashboard.py generates; its panels cover what issue 13 asks."""

from __future__ import annotations

import json

from app.dashboard import OUT, ROWS, dashboard, render


def test_checked_in_dashboard_is_the_generated_one() -> None:
    assert OUT.read_text() == render(), "stale: run `python -m app.dashboard`"


def test_dashboard_has_one_host_variable_and_the_rows() -> None:
    d = dashboard()
    assert [v["name"] for v in d["templating"]["list"]] == ["host"]
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Decisions", "Inputs", "Pool", "Pipeline", "Hardware"]
    titles = {p["title"] for p in d["panels"]}
    for wanted in ("Scaling factor", "Quantum state", "Market entropy", "Thermal state (1 = "
                   "throttle point)", "Pool bytes per tier against the budget",
                   "Decision to apply latency", "Consumer lag", "Kafka connected",
                   "Temperatures", "GPU memory"):  # fmt: skip
        assert wanted in titles
    assert d["annotations"]["list"][0]["expr"].startswith("increase(qas_hardware_fingerprint")


def test_every_query_selects_the_host_and_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for p in dashboard()["panels"]:
        pos = p["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))
        for target in p.get("targets", []):
            assert "$host" in target["expr"], p["title"]
    assert sum(len(panels) for _, panels in ROWS) == len(
        [p for p in json.loads(OUT.read_text())["panels"] if p["type"] != "row"]
    )
