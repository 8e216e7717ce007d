"""The CLI contract, run as a user runs it: a subprocess, stdout JSON lines, stderr logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import TansuBroker, free_port

QAS = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parents[2]


def qas(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QAS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_run_embedded_prints_decision_and_apply_result() -> None:
    r = qas("run", "--duration", "5", "--json", "--metrics-port", "0")
    assert r.returncode == 0, r.stderr
    types = [o["type"] for o in _lines(r.stdout)]  # stdout holds only JSON lines
    assert "decision" in types and "applied" in types
    assert "Traceback" not in r.stderr and "stopped cleanly" in r.stderr


@pytest.mark.kafka
def test_run_against_kafka_prints_decision_and_apply_result(broker: TansuBroker) -> None:
    r = qas(
        "run", "--duration", "5", "--json", "--no-metrics", "--bootstrap-servers", broker.bootstrap
    )
    assert r.returncode == 0, r.stderr
    types = [o["type"] for o in _lines(r.stdout)]
    assert "decision" in types and "applied" in types


def test_environment_variables_configure_and_flags_win() -> None:
    r = qas("run", "--json", "--no-metrics", env={"QAS_DURATION": "1.5", "QAS_HOST_ID": "from-env"})
    assert r.returncode == 0, r.stderr
    assert {o["host_id"] for o in _lines(r.stdout)} == {"from-env"}
    r = qas(
        "run",
        "--json",
        "--no-metrics",
        "--host-id",
        "from-flag",
        env={"QAS_DURATION": "1.5", "QAS_HOST_ID": "from-env"},
    )
    assert {o["host_id"] for o in _lines(r.stdout)} == {"from-flag"}


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["run", "--duration", "-3"], {}, "must be a positive finite number"),
        (["run", "--metrics-port", "99999"], {}, "port must be 0-65535"),
        (["run", "--bootstrap-servers", "nohostport"], {}, "expected HOST:PORT"),
        (["run", "--frobnicate"], {}, "unrecognized arguments"),
        (["observer"], {}, "--bootstrap-servers"),
        (["run"], {"QAS_DURATION": "soon"}, "QAS_DURATION"),
        (["decide", "--entropy", "1.5", "--profit", "0.2"], {}, "must be in [0, 1]"),
        (["run", "--settings", "/nonexistent.toml"], {}, "cannot read it"),
        (["run"], {"QAS_SETTINGS": str(ROOT / "README.md")}, "--settings"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    r = qas(*args, env=env)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr
    assert "Traceback" not in r.stderr


def test_unreachable_broker_is_one_line_and_nonzero() -> None:
    r = qas(
        "run",
        "--bootstrap-servers",
        f"127.0.0.1:{free_port()}",
        "--connect-timeout",
        "1",
        "--no-metrics",
        "--log-level",
        "ERROR",
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot reach Kafka at 127.0.0.1:")
    assert "Traceback" not in r.stderr


def test_help_documents_every_option_and_its_environment_variable() -> None:
    out = qas("run", "--help").stdout
    for option, env in [
        ("--bootstrap-servers", "QAS_BOOTSTRAP_SERVERS"),
        ("--duration", "QAS_DURATION"),
        ("--json", "QAS_JSON"),
        ("--metrics-port", "QAS_METRICS_PORT"),
        ("--host-id", "QAS_HOST_ID"),
        ("--sensor-interval", "QAS_SENSOR_INTERVAL"),
    ]:
        assert option in out and env in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_without_traceback(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [*QAS, "run", "--json", "--no-metrics"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # a decision: the pipeline is up
    assert json.loads(first)["type"] == "decision"
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped cleanly" in err


def test_metrics_port_in_use_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = qas("run", "--duration", "1", "--metrics-port", str(port))
    assert (
        r.returncode == 1 and f"{port} is already in use" in r.stderr and "--no-metrics" in r.stderr
    )
    assert "Traceback" not in r.stderr


def test_decide_explains_itself() -> None:
    r = qas("decide", "--entropy", "0.9", "--thermal", "0.2", "--profit", "0.5")
    assert r.returncode == 0, r.stderr
    assert "Market entropy 0.90 is above the normal band" in r.stdout
    r = qas("decide", "--entropy", "0.5", "--thermal", "0.3", "--profit", "0.9", "--json")
    d = json.loads(r.stdout)
    assert d["type"] == "decision" and 1.3 <= d["scaling_factor"] <= 1.8
    assert "profit_harmonic" in d["triggers"] and d["reasons"]


def test_settings_file_reaches_the_services_and_the_interval_flag_wins(tmp_path: Path) -> None:
    from app.cli import _options, build_parser

    f = tmp_path / "qas.toml"
    f.write_text("sensor_interval_seconds = 3.0\n[decision]\nscale_down_window_seconds = 5.0\n")
    opts = _options(build_parser().parse_args(["decider", "--bootstrap-servers", "h:1",
                                               "--settings", str(f)]))  # fmt: skip
    assert opts.settings.decision.scale_down_window_seconds == 5.0
    assert opts.settings.sensor_interval_seconds == 3.0
    opts = _options(build_parser().parse_args(["run", "--settings", str(f),
                                               "--sensor-interval", "0.5"]))  # fmt: skip
    assert (opts.settings.sensor_interval_seconds, opts.settings.decision.scale_down_window_seconds) == (0.5, 5.0)
