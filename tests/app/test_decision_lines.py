"""`qas run` without --json shows the pipeline working: a readable line per decision and per
apply result, formatted as `qas decide` formats a decision; with --json, stdout is JSON only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.decision_lines import decision_fields, decision_line, decision_text
from core.quantum_auto_scaler import QuantumAutoScaler

ROOT = Path(__file__).resolve().parents[2]
QAS = [sys.executable, "-m", "app.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QAS, "run", "--no-metrics", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=dict(os.environ))  # fmt: skip


def test_run_prints_a_line_per_decision_and_apply_result() -> None:
    r = _run("--duration", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    decisions = [ln for ln in lines if " decision #" in ln]
    applied = [ln for ln in lines if " applied  #" in ln]
    assert decisions and applied, r.stdout
    assert "scaling factor" in decisions[0] and "why: " in decisions[0]
    assert "applied in" in applied[0] and "memory_pool:" in applied[0]
    assert "level=INFO" not in r.stdout and "level=INFO" in r.stderr  # logs stay on stderr


def test_run_json_stdout_is_json_lines_only() -> None:
    r = _run("--duration", "3", "--json")
    assert r.returncode == 0, r.stderr
    records = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert {"decision", "applied"} <= {o["type"] for o in records}


def test_decide_and_run_share_the_decision_formatter() -> None:
    d = QuantumAutoScaler(host_id="h").compute_quantum_scaling(
        market_entropy=0.9, thermal_state=0.3, profit_potential=0.5
    )
    sized, run = decision_fields(d)
    text, line = decision_text(d), decision_line(d)
    assert text.splitlines()[:3] == [sized, run, "why:"]
    assert sized in line and run in line and "\n" not in line
    assert all(reason in text and reason in line for reason in d.reasons) and d.reasons
