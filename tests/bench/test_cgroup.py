"""bench/cgroup.py against the real kernel: OOM kill under 64 MiB, no kill under it, squeeze, cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.cgroup import PERIOD_US, V1_MEM, Cgroup, is_v2

LIMIT = 64 * 1024 * 1024


def _require() -> None:
    if os.environ.get("QAS_SKIP_CGROUP") == "1":
        pytest.skip("QAS_SKIP_CGROUP=1 set explicitly")
    if os.geteuid() != 0 or not (is_v2() or V1_MEM.exists()):
        pytest.fail("cgroup tests need root and a memory controller; set QAS_SKIP_CGROUP=1 to skip them")


def _run(mib: int) -> tuple[Cgroup, int, bool, int | None]:
    cg = Cgroup(f"qas-bench-test-{os.getpid()}-{mib}", LIMIT, 1.0)
    cg.create()
    try:
        code = f"b = bytearray({mib} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
        p = cg.start([sys.executable, "-c", code])
        rc = p.wait(60)
        return cg, rc, cg.killed_by_oom(rc), cg.peak_bytes()
    finally:
        cg.cleanup()


def test_over_limit_is_oom_killed() -> None:
    _require()
    cg, rc, killed, _peak = _run(200)
    assert killed and rc < 0
    assert cg.dirs == []


def test_under_limit_is_not_killed() -> None:
    _require()
    cg, rc, killed, peak = _run(16)
    assert rc == 0 and not killed
    assert peak is not None and peak < LIMIT
    assert cg.dirs == []


def test_squeeze_changes_quota_and_cleans_up() -> None:
    _require()
    cg = Cgroup(f"qas-bench-test-{os.getpid()}-cpu", LIMIT, 1.0)
    cg.create()
    try:
        p = cg.start([sys.executable, "-c", "import time; time.sleep(1)"], stdout=subprocess.DEVNULL)
        before = cg.cpu_quota_text()
        cg.set_cpu(0.25)
        after = cg.cpu_quota_text()
        time.sleep(0.1)
        cg.set_cpu(1.0)
        p.wait(10)
    finally:
        cg.cleanup()
    assert before.split()[0] == str(PERIOD_US) and after.split()[0] == str(PERIOD_US // 4)
    assert cg.dirs == []
