"""`qas replay` / `qas report` as a user runs them, the demo, and the engine example on Kafka."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.broker import TansuBroker
from tests.support.data import DATA

ROOT = Path(__file__).resolve().parents[2]
QAS = [sys.executable, "-m", "app.cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QAS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_replay_of_a_real_series_follows_its_volatility() -> None:
    started = time.monotonic()
    r = run("replay", str(DATA / "sp500.csv.gz"), "--speed", "max", "--json")
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    decisions = [d for d in lines if d["type"] == "decision"]
    assert decisions and all({"input_time", "market_entropy", "profit_potential", "thermal_state",
                              "scaling_factor", "reasons"} <= set(d) for d in decisions)  # fmt: skip
    crisis = [d["market_entropy"] for d in decisions if "2008-09" <= d["input_time"] < "2009-01"]
    calm = [d["market_entropy"] for d in decisions if "2017-01" <= d["input_time"] < "2018-01"]
    assert sum(crisis) / len(crisis) > sum(calm) / len(calm) + 0.3
    assert "replay [" not in r.stderr  # no progress bar when stderr is not a terminal
    assert elapsed < 60  # 5 031 rows "in seconds"; generous for a loaded CI machine


@pytest.mark.parametrize(
    ("text", "skipped"),
    [
        (
            "DATE,DCOILWTICO\n2020-01-02,61.2\n2020-01-03,.\n2020-01-06,63.0\n2020-01-07,x\n" * 1,
            "2 skipped",
        ),
        (
            ",Open,High,Low,Close,Volume\n"
            + "".join(f"2024-01-02T09:{m:02d}:00,1,1,1,{100 + m % 7},5\n" for m in range(60)),
            "none skipped",
        ),
    ],
)
def test_replay_layouts_and_bad_row_summary(tmp_path: Path, text: str, skipped: str) -> None:
    f = tmp_path / "prices.csv"
    f.write_text(text)
    r = run("replay", str(f))
    assert r.returncode == 0, r.stderr
    assert skipped in r.stderr


def test_replay_rejects_unusable_files_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_text("Date,Close\n1/2/2020,.\n")
    for args in (["replay", str(tmp_path / "missing.csv")], ["replay", str(empty)],
                 ["report", "sample", "-o", str(tmp_path / "r.pdf")]):  # fmt: skip
        r = run(*args)
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error:"), args
        assert "Traceback" not in r.stderr


def test_report_png_and_html(tmp_path: Path) -> None:
    png, page = tmp_path / "report.png", tmp_path / "report.html"
    assert run("report", "sample", "-o", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    r = run("report", "sample", "-o", str(page))
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    assert "data:image/png;base64," in html and "market_entropy" in html and "<table>" in html


def test_demo_runs_in_under_a_minute() -> None:
    started = time.monotonic()
    r = subprocess.run([sys.executable, "demo_quantum_auto_scaling.py"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 60
    for trigger in ("market entropy trigger", "thermal mirror trigger", "profit harmonic trigger",
                    "hardware observer trigger", "replay of the shipped sample", "COLLAPSED"):  # fmt: skip
        assert trigger in r.stdout


@pytest.mark.kafka
def test_engine_example_against_the_test_broker(broker: TansuBroker) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    qas = subprocess.Popen([*QAS, "run", "--bootstrap-servers", broker.bootstrap, "--no-metrics",
                            "--host-id", "engine-test", "--duration", "40"], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(4)  # QAS's groups join first
        r = subprocess.run([sys.executable, "examples/trading_engine.py", "--bootstrap-servers",
                            broker.bootstrap, "--duration", "15", "--host-id", "engine-test",
                            "--rate", "60"], capture_output=True, text=True, timeout=90, cwd=ROOT,
                           env=env)  # fmt: skip
    finally:
        qas.terminate()
        _, err = qas.communicate(timeout=30)
    assert r.returncode == 0, r.stderr
    adopted = int(r.stdout.split("adopted ")[1].split()[0])
    assert adopted >= 1, r.stdout + r.stderr[-2000:]
    assert "Traceback" not in err


def test_replay_ends_only_when_every_decision_reached_the_applier() -> None:
    r = run("replay", str(DATA / "sp500.csv.gz"))
    assert r.returncode == 0, r.stderr
    summary = r.stderr.strip().splitlines()[
        -1
    ]  # "replayed N rows: D decisions, A applied, S skipped"
    decisions = int(summary.split(": ")[1].split()[0])
    applied = int(summary.split(", ")[1].split()[0])
    skipped = int(summary.split(", ")[2].split()[0])
    # one apply result per decision; the skipped ones are the warm-up's (confidence below 0.7)
    assert decisions > 1000 and applied + skipped == decisions and 0 < skipped < 60, summary


def _summary(stderr: str) -> tuple[int, int, int]:
    """(decisions, applied, skipped) from "replayed N rows: D decisions, A applied, S skipped"."""
    line = stderr.strip().splitlines()[-1]
    parts = line.split(": ")[1].split(", ")
    return int(parts[0].split()[0]), int(parts[1].split()[0]), int(parts[2].split()[0])


def _monthly_file(tmp_path: Path) -> Path:
    """Month-end closes of the shipped S&P 500 series (240 rows), as a FRED-style file."""
    with gzip.open(DATA / "sp500.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    by_month = {}
    for r in rows:
        m, _, y = r["Date"].split("/")
        by_month[(y, m)] = r  # the last row of each month wins
    path = tmp_path / "sp500_monthly.csv"
    path.write_text(
        "DATE,CLOSE\n" + "".join(f"{r['Date']},{r['Close']}\n" for r in by_month.values())
    )
    return path


@pytest.mark.kafka
def test_kafka_replay_counts_exactly_like_the_embedded_bus(tmp_path: Path) -> None:
    # A broker of its own: "fresh" means fresh, and the 2 x 104 decisions this test leaves on
    # qas.decisions (signed with the replays' ephemeral keys) are no backlog for later tests
    # whose appliers read the suite broker's topics from the start.
    broker = TansuBroker().start()
    try:
        _replay_twice(broker, tmp_path)
    finally:
        broker.stop()


def _replay_twice(broker: TansuBroker, tmp_path: Path) -> None:
    path = _monthly_file(tmp_path)
    kafka = ["--bootstrap-servers", broker.bootstrap]
    embedded = run("replay", str(path), "--json")
    assert embedded.returncode == 0, embedded.stderr
    want = _summary(embedded.stderr)
    decisions, applied, skipped = want
    assert decisions > 20 and applied + skipped == decisions and skipped > 0, want
    times = [json.loads(x)["input_time"] for x in embedded.stdout.splitlines()
             if json.loads(x)["type"] == "decision"]  # fmt: skip
    # twice on the same broker: the second run finds the first run's ticks and decisions on the
    # topics (same --host-id), and must neither count nor apply them
    for attempt in ("fresh broker", "broker with the earlier run's records"):
        r = run("replay", str(path), "--json", "--host-id", "same-desk", *kafka, timeout=180)
        assert r.returncode == 0, (attempt, r.stderr[-3000:])
        assert _summary(r.stderr) == want, (attempt, r.stderr[-1500:])
        out = [json.loads(x) for x in r.stdout.splitlines()]
        assert [d["input_time"] for d in out if d["type"] == "decision"] == times, attempt
        assert sum(1 for d in out if d["type"] == "applied") == decisions, attempt
        hosts = {d["host_id"] for d in out}
        assert len(hosts) == 1 and next(iter(hosts)).startswith("same-desk~replay-"), hosts
