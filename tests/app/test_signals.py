"""SIGINT and SIGTERM stop a service within 2 s while it is still connecting to the broker.

The broker is unreachable two ways: a loopback port nobody listens on (connection refused,
the start-up retry loop backs off and tries again) and a listener that accepts and never
answers (the client waits on its first request). --connect-timeout is 60 s, so a stop that
waited for the connect to give up would take 30 times the bound.
"""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
STOP_BOUND_S = 2.0  # the promise (README: SIGINT and SIGTERM stop cleanly, within 2 s)


class Service:
    """One `qas` subprocess whose stderr lines are read as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args, "--connect-timeout", "60"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.seen)
                continue
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not within {timeout} s: {''.join(self.seen)}")

    def stop_with(self, sig: signal.Signals) -> tuple[int, float]:
        """(exit status, seconds from the signal to the exit)."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        took = time.monotonic() - sent
        time.sleep(0.1)  # the reader thread drains what is left
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, took


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A loopback listener that accepts connections and never answers."""
    s = socket.create_server(("127.0.0.1", 0))
    s.settimeout(60)
    try:
        yield s
    finally:
        s.close()


COMMANDS = [
    ("observer", "--no-metrics"),
    ("decider", "--insecure-unsigned"),
    ("applier", "--insecure-unsigned", "--no-metrics"),
    ("run", "--no-metrics"),
]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_signal_stops_a_service_retrying_a_refused_broker(
    command: tuple[str, ...], sig: signal.Signals
) -> None:
    svc = Service(*command, "--bootstrap-servers", f"127.0.0.1:{free_port()}")
    svc.wait_for("broker not ready")  # in the start-up retry loop
    time.sleep(0.5)  # and into a back-off sleep or the next try
    code, took = svc.stop_with(sig)
    out = "".join(svc.seen)
    assert code == 0, out
    assert took < STOP_BOUND_S, (took, out)
    assert "stopped while connecting" in out and "cannot reach Kafka" not in out
    assert "Traceback" not in out and "Unclosed" not in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_service_waiting_on_a_broker_that_never_answers(
    silent_listener: socket.socket, sig: signal.Signals
) -> None:
    port = silent_listener.getsockname()[1]
    svc = Service("observer", "--no-metrics", "--bootstrap-servers", f"127.0.0.1:{port}")
    conn, _ = silent_listener.accept()  # the client is connected and waits for an answer
    try:
        time.sleep(0.5)
        code, took = svc.stop_with(sig)
    finally:
        conn.close()
    out = "".join(svc.seen)
    assert code == 0, out
    assert took < STOP_BOUND_S, (took, out)
    assert "stopped while connecting" in out and "Traceback" not in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_qas_top_while_it_connects(sig: signal.Signals) -> None:
    svc = Service("top", "--bootstrap-servers", f"127.0.0.1:{free_port()}")
    svc.wait_for("broker not ready")
    time.sleep(0.5)
    code, took = svc.stop_with(sig)
    out = "".join(svc.seen)
    assert code == 0, out
    assert took < STOP_BOUND_S, (took, out)
    assert "cannot reach Kafka" not in out and "Traceback" not in out, out
