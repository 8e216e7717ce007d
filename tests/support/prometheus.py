"""A real Prometheus server (Debian package ``prometheus``, which brings ``promtool``) for tests.

``make test`` installs the package when it is missing and it can (root with apt-get). Without
it a test that needs it fails with a message naming the package, unless QAS_SKIP_PROMETHEUS=1
says to skip on purpose. Each server gets a free loopback port and its own temporary storage,
and is stopped by the test that started it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

PACKAGE_HINT = (
    "the Debian package `prometheus` (prometheus and promtool) is not installed: "
    "`apt-get install prometheus`, or set QAS_SKIP_PROMETHEUS=1 to skip these tests on purpose"
)


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("QAS_SKIP_PROMETHEUS") == "1":
            pytest.skip(f"{name} missing and QAS_SKIP_PROMETHEUS=1")
        pytest.fail(PACKAGE_HINT, pytrace=False)
    return path


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], input=None if stdin is None else stdin.decode(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    def __init__(self, config: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qas-prom-"))
        (self.dir / "prometheus.yml").write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [binary("prometheus"), f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited: {(self.dir / 'prometheus.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready")

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        return body

    def query(self, expr: str) -> Any:
        return self.api("query", query=expr)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
