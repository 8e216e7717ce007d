"""qas top: the state it keeps, the live view's rendering, and the pipe mode end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from app.top import MAX_HOSTS, TopState, render, sparkline, summary_line
from shared.config import Settings
from shared.decision import decide
from shared.messages import ApplyResult, DeadLetter, PriorState, ScalingDecision, SensorReading
from tests.support.factories import inputs_for, reference_host

ROOT = Path(__file__).resolve().parents[2]


def decision(host: str = "h1", entropy: float = 0.9) -> ScalingDecision:
    d, _ = decide(inputs_for(reference_host(), entropy, 0.2, 0.5), PriorState(), host_id=host,
                  now=1000.0, c=Settings().decision)  # fmt: skip
    assert d is not None
    return d


def state_with_one_host() -> TopState:
    s = TopState()
    d = decision()
    s.observe(d)
    s.observe(SensorReading(event_time=1000.0, host_id="h1", cpu_utilization_ratio=0.1,
                            memory_available_bytes=1 << 30, thermal_state=0.3))  # fmt: skip
    s.observe(ApplyResult(event_time=1000.5, host_id="h1", decision_id=d.decision_id,
                          decision_event_time=1000.0, status="applied", bytes_after=3 << 20,
                          error_bound=1e-4, duration_seconds=0.002))  # fmt: skip
    s.observe(DeadLetter(event_time=1000.0, host_id="h1", topic="qas.sensors", partition=0,
                         offset=1, reason="bad", payload=b""))  # fmt: skip
    s.lag = {"qas-decider": 3, "qas-applier": 0}
    return s


def test_sparkline_maps_zero_to_one_onto_eight_levels() -> None:
    assert sparkline([0.0, 0.5, 1.0, 2.0, -1.0]) == "▁▅██▁"


def test_render_shows_decision_reasons_inputs_pool_applies_dead_letters_and_lag() -> None:
    s = state_with_one_host()
    console = Console(record=True, width=140, color_system=None)
    console.print(render(s, None))
    text = console.export_text()
    d = s.hosts["h1"].decision
    assert d is not None
    assert "h1" in text and f"factor {d.scaling_factor:.3f}" in text
    assert d.reasons[0][:40] in text
    assert "market entropy" in text and "thermal state" in text and "0.30" in text
    assert re.search(r"[▁▂▃▄▅▆▇█]", text)
    assert "pool 3.0 MiB" in text and "applied" in text
    assert "dead letters 1" in text and "qas-decider 3" in text


def test_one_host_filter_and_bounded_hosts() -> None:
    s = state_with_one_host()
    s.observe(decision("h2"))
    assert [h for h, _ in s.shown("h2")] == ["h2"] and len(s.shown(None)) == 2
    for i in range(MAX_HOSTS + 5):
        s.observe(decision(f"x{i}"))
    assert len(s.hosts) == MAX_HOSTS and s.hidden_hosts == 7


def test_summary_line_is_one_line_with_every_shown_host() -> None:
    s = state_with_one_host()
    s.observe(decision("h2", entropy=0.1))
    line = summary_line(s, None, now=0.0)
    assert "\n" not in line and line.startswith("00:00:00")
    assert "h1 factor" in line and "| h2 factor" in line and "dead letters 1" in line
    assert "lag 3" in line


def test_pipe_mode_prints_one_summary_line_a_second() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "top", "--duration", "4", "--market", "sample",
         "--market-rate", "50", "--host-id", "top-test"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) >= 2, lines  # one a second for 4 s (not counted exactly: a busy CI box)
    pattern = re.compile(r"^\d\d:\d\d:\d\d  top-test (waiting for a decision|factor [\d.]+ )")
    assert all(pattern.match(line) for line in lines), lines
    assert any("factor" in line and "apply applied" in line for line in lines), lines
    assert "\x1b[" not in proc.stdout  # no escape codes in a pipe


def test_on_a_terminal_it_draws_the_live_view() -> None:
    import os
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "140", "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "top", "--duration", "3", "--market", "sample",
         "--market-rate", "50", "--host-id", "tty-test"],
        cwd=ROOT, stdin=follower, stdout=follower, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in screen  # drawn, not printed line by line
    assert "tty-test" in screen and "market entropy" in screen and "dead letters" in screen
    assert not re.search(r"^\d\d:\d\d:\d\d  tty-test", screen, re.M)  # not the pipe summary
