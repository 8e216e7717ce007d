"""A new user's first hour: start-up logs and errors that name the thing and the fix (issue 14)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.logs import ClientNoise
from tests.support.broker import TansuBroker, free_port

ROOT = Path(__file__).resolve().parents[2]
QAS = [sys.executable, "-m", "app.cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QAS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "Unexpected error during InitProducerIdRequest",
                             None, None)  # fmt: skip


def test_kafka_client_records_are_lowered_to_debug() -> None:
    quiet, debug = ClientNoise(show=False), ClientNoise(show=True)
    err = _record("aiokafka.producer.sender", logging.ERROR)
    assert quiet.filter(err) is False  # not shown at INFO
    shown = _record("aiokafka.conn", logging.WARNING)
    assert debug.filter(shown) is True and shown.levelname == "DEBUG"
    ours = _record("qas.bus.kafka", logging.WARNING)
    assert quiet.filter(ours) is True and ours.levelname == "WARNING"  # QAS's own: untouched
    assert quiet.filter(_record("kafka_like.thing", logging.ERROR)) is True


@pytest.mark.kafka
def test_a_normal_kafka_start_logs_no_error(broker: TansuBroker) -> None:
    r = run("run", "--bootstrap-servers", broker.bootstrap, "--duration", "3", "--no-metrics")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "level=ERROR" not in r.stderr and "logger=aiokafka" not in r.stderr, r.stderr
    warnings = [x for x in r.stderr.splitlines() if "level=WARNING" in x]
    assert len(warnings) == 1 and "InitProducerId" in warnings[0], warnings
    assert "without idempotence" in warnings[0]
    debug = run("run", "--bootstrap-servers", broker.bootstrap, "--duration", "2", "--no-metrics",
                "--log-level", "DEBUG")  # fmt: skip
    assert debug.returncode == 0 and "level=ERROR" not in debug.stderr
    assert "level=DEBUG logger=aiokafka" in debug.stderr  # there for whoever asks for it


def test_unreachable_broker_is_one_line_without_client_noise() -> None:
    r = run("run", "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--connect-timeout", "1",
            "--no-metrics", "--duration", "2")  # fmt: skip
    assert r.returncode == 1
    assert "logger=aiokafka" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot reach Kafka at 127.0.0.1:")


def test_a_taken_metrics_port_names_the_port_and_the_options() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("run", "--duration", "2", "--metrics-port", str(port))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{port} is already in use" in last
    assert "--metrics-port" in last and "--no-metrics" in last


def test_report_output_directory_is_checked_before_the_replay(tmp_path: Path) -> None:
    r = run("report", "sample", "-o", str(tmp_path / "no" / "such" / "x.png"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: --output: no such directory {str(tmp_path / 'no' / 'such')!r}; "
        "create it or write elsewhere"
    )
    assert "logger=qas.replay" not in r.stderr  # nothing was read or replayed


def test_version() -> None:
    from importlib.metadata import version

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"qas {version('quantum-autoscaler')}"
