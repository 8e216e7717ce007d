"""deploy/prometheus: promtool checks the config and rules, and runs the alert unit tests;
every alert is tested both firing and not firing and says which host."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.prometheus import promtool

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def alerts() -> list[dict[str, object]]:
    rules = yaml.safe_load((PROM / "rules.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_config() -> None:
    out = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", str(PROM / "rules.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules() -> None:
    out = promtool("test", "rules", str(PROM / "rules_test.yml"))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load((PROM / "rules_test.yml").read_text())["tests"]
    cases = [c for t in tests for c in t["alert_rule_test"]]
    names = [a["alert"] for a in alerts()]
    assert len(names) >= 8
    for name in names:
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name} is never tested firing"
        assert any(not c["exp_alerts"] for c in mine), f"{name} is never tested not firing"


def test_every_alert_has_a_summary_and_a_description_naming_the_host() -> None:
    for a in alerts():
        notes = a["annotations"]
        assert isinstance(notes, dict) and notes["summary"] and notes["description"]
        # QASTargetDown: a target that is down exports no host id; it names the instance.
        where = "{{ $labels.instance }}" if a["alert"] == "QASTargetDown" else "{{ $labels.host }}"
        assert where in notes["summary"] and where in notes["description"], a["alert"]
