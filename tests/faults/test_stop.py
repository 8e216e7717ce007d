"""``qas run`` on Kafka stops within 10 s of SIGINT, SIGTERM or --duration whatever the broker is
doing: up, paused (SIGSTOP) or killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.broker import TansuBroker

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
STOP_LIMIT = 10.0


def _wait_for_decision(out: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if '"decision"' in out.read_text():
            return
        assert proc.poll() is None, f"qas exited early with {proc.returncode}"
        time.sleep(0.2)
    raise AssertionError(f"no decision within {timeout} s")


@pytest.mark.parametrize(
    ("state", "how"),
    [("up", "SIGINT"), ("paused", "SIGTERM"), ("killed", "SIGTERM"), ("paused", "duration")],
)
def test_stop_within_10_s_in_every_broker_state(state: str, how: str) -> None:
    broker = TansuBroker().start()
    out = Path(tempfile.mkstemp(prefix="qas-out-")[1])
    err = Path(tempfile.mkstemp(prefix="qas-err-")[1])
    duration = ["--duration", "30"] if how == "duration" else []
    proc: subprocess.Popen[bytes] | None = None
    try:
        with out.open("wb") as o, err.open("wb") as e:
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "run", "--bootstrap-servers", broker.bootstrap,
                 "--json", "--no-metrics", "--market", "sample", "--market-rate", "20",
                 "--connect-timeout", "20", *duration],
                stdout=o, stderr=e, cwd=ROOT, env={**os.environ, "QAS_HOST_ID": "fault-host"},
            )  # fmt: skip
        _wait_for_decision(out, proc)
        assert broker.proc is not None
        if state == "paused":
            broker.proc.send_signal(signal.SIGSTOP)
        elif state == "killed":
            broker.proc.kill()
            broker.proc.wait()
        time.sleep(1)
        if how == "duration":
            asked = started + 30
        else:
            asked = time.monotonic()
            proc.send_signal(getattr(signal, how))
        try:
            proc.wait(timeout=max(0.0, asked - time.monotonic()) + STOP_LIMIT + 5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"qas still running {STOP_LIMIT + 5} s after the stop") from None
        took = time.monotonic() - asked
        print(f"stop after {how} with the broker {state}: {took:.1f} s")  # the README's figure
        assert took < STOP_LIMIT, f"stopped {took:.1f} s after {how} ({err.read_text()[-1500:]})"
        assert proc.returncode == 0, err.read_text()[-2000:]
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if broker.proc is not None and broker.proc.poll() is None:
            broker.proc.send_signal(signal.SIGCONT)
        broker.stop()
        out.unlink(missing_ok=True)
        err.unlink(missing_ok=True)
