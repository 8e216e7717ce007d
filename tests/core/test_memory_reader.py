"""core/engine/memory.py ``MemoryReader``: the engine's own cgroup (v1, v2) and RSS, its limit.

A v2 tree in tests/core/data/cgroup_v2, v1 trees written under tmp_path, and the real v1 memory
controller of this machine: a child cgroup with a limit and a process in it, read from inside
the process and through its /proc/<pid>/cgroup.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.cgroup import V1_MEM, Cgroup, is_v2
from core.engine.memory import MemoryReader, find_cgroup, parse_pressure, read_cgroup

MiB = 1 << 20
V2_TREE = Path(__file__).parent / "data" / "cgroup_v2"
ROOT = Path(__file__).resolve().parents[2]


def test_v2_tree_working_set_tightest_limit_up_the_tree_and_pressure() -> None:
    r = MemoryReader(root=V2_TREE, rss=lambda: 100 * MiB, clock=lambda: 7.0)
    assert r.cgroup is not None and r.cgroup.version == 2
    assert r.cgroup.directory == V2_TREE / "sys/fs/cgroup/system.slice/engine.service"
    got = r.read()
    assert got.source == "cgroup-v2" and got.at == 7.0
    assert got.used_bytes == 120 * MiB - 8 * MiB  # memory.current less inactive_file
    assert got.limit_bytes == 192 * MiB  # system.slice's memory.max binds, not the service's
    assert got.pressure == pytest.approx(0.125)
    assert got.rss_bytes == 100 * MiB


def test_v2_memory_high_counts_as_a_limit(tmp_path: Path) -> None:
    shutil.copytree(V2_TREE, tmp_path / "t")
    (tmp_path / "t/sys/fs/cgroup/system.slice/engine.service/memory.high").write_text("150994944\n")
    got = MemoryReader(root=tmp_path / "t", rss=lambda: MiB).read()
    assert got.limit_bytes == 144 * MiB


def v1_tree(tmp: Path, *, limit: int, usage: int, mount_root: str = "/", path: str = "/eng",
            stat: str = "") -> Path:  # fmt: skip
    (tmp / "proc/self").mkdir(parents=True)
    (tmp / "proc/self/cgroup").write_text(f"5:devices:/\n4:memory:{path}\n0::/\n")
    (tmp / "proc/self/mountinfo").write_text(
        f"35 31 0:32 {mount_root} /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    rel = path[len(mount_root) :] if mount_root != "/" else path
    d = tmp / "sys/fs/cgroup/memory" / rel.lstrip("/")
    d.mkdir(parents=True, exist_ok=True)
    (d / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (d / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (d / "memory.stat").write_text(stat or f"total_inactive_file {MiB}\nhierarchical_memory_limit {limit}\n")
    return d


def test_v1_limit_usage_less_inactive_file(tmp_path: Path) -> None:
    d = v1_tree(tmp_path, limit=160 * MiB, usage=90 * MiB)
    r = MemoryReader(root=tmp_path, rss=lambda: 80 * MiB)
    assert r.cgroup is not None and (r.cgroup.version, r.cgroup.directory) == (1, d)
    got = r.read()
    assert (got.source, got.used_bytes, got.limit_bytes, got.pressure) == (
        "cgroup-v1", 89 * MiB, 160 * MiB, None)  # fmt: skip


def test_v1_hierarchical_limit_binds(tmp_path: Path) -> None:
    stat = f"total_inactive_file 0\nhierarchical_memory_limit {100 * MiB}\n"
    v1_tree(tmp_path, limit=9223372036854771712, usage=10 * MiB, stat=stat)
    assert MemoryReader(root=tmp_path, rss=lambda: MiB).read().limit_bytes == 100 * MiB


@pytest.mark.parametrize("huge", [9223372036854771712, 1 << 60, 9223372036854775807])
def test_v1_huge_limit_is_unlimited(tmp_path: Path, huge: int) -> None:
    stat = f"hierarchical_memory_limit {huge}\n"
    v1_tree(tmp_path, limit=huge, usage=10 * MiB, stat=stat)
    got = MemoryReader(root=tmp_path, rss=lambda: 5 * MiB).read()
    assert got.limit_bytes is None and got.source == "rss" and got.used_bytes == 5 * MiB
    # a declared limit is then the one held, against the RSS
    got = MemoryReader(64 * MiB, root=tmp_path, rss=lambda: 5 * MiB).read()
    assert (got.source, got.limit_bytes, got.used_bytes) == ("declared", 64 * MiB, 5 * MiB)


def test_declared_vs_cgroup_the_smaller_limit_is_held(tmp_path: Path) -> None:
    v1_tree(tmp_path, limit=160 * MiB, usage=101 * MiB)  # 100 MiB used
    tight = MemoryReader(120 * MiB, root=tmp_path, rss=lambda: 80 * MiB).read()
    assert (tight.source, tight.limit_bytes, tight.used_bytes) == ("declared", 120 * MiB, 80 * MiB)
    assert tight.cgroup_limit_bytes == 160 * MiB and tight.declared_limit_bytes == 120 * MiB
    loose = MemoryReader(200 * MiB, root=tmp_path, rss=lambda: 80 * MiB).read()
    assert (loose.source, loose.limit_bytes, loose.used_bytes) == ("cgroup-v1", 160 * MiB, 100 * MiB)
    # a tie is the cgroup's, even where the RSS (shared library pages) is the larger
    tie = MemoryReader(160 * MiB, root=tmp_path, rss=lambda: 130 * MiB).read()
    assert (tie.source, tie.used_bytes) == ("cgroup-v1", 100 * MiB)


def test_container_mount_root_is_the_own_group(tmp_path: Path) -> None:
    # no cgroup namespace: /proc/self/cgroup names the host's path, the mount's root is that path
    d = v1_tree(tmp_path, limit=64 * MiB, usage=8 * MiB, mount_root="/docker/abc", path="/docker/abc")
    cg = find_cgroup(tmp_path)
    assert cg is not None and cg.directory == d == tmp_path / "sys/fs/cgroup/memory"
    assert read_cgroup(cg)[1] == 64 * MiB


def test_no_cgroup_reads_rss(tmp_path: Path) -> None:
    got = MemoryReader(root=tmp_path, rss=lambda: 3 * MiB).read()
    assert (got.source, got.used_bytes, got.limit_bytes) == ("rss", 3 * MiB, None)


def test_pressure_format() -> None:
    assert parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n") == 0.0
    assert parse_pressure("full avg10=9.00 avg60=0 avg300=0 total=1\n") is None
    real = Path("/sys/fs/cgroup/unified/memory.pressure")
    if real.exists():  # the kernel's own file parses
        p = parse_pressure(real.read_text())
        assert p is not None and 0.0 <= p <= 1.0


CHILD = """
import json, sys
from core.engine.memory import MemoryReader
held = bytearray(b"\\x01" * (24 << 20))  # touched: resident
r = MemoryReader().read()
print(json.dumps({"source": r.source, "used": r.used_bytes, "limit": r.limit_bytes,
                  "dir": str(MemoryReader().cgroup.directory)}), flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(os.geteuid() != 0 or is_v2() or not V1_MEM.is_dir(),
                    reason="needs root and the v1 memory controller")  # fmt: skip
def test_real_v1_cgroup_of_a_process_in_it() -> None:
    limit = 96 * MiB
    cg = Cgroup(f"qas-memtest-{uuid.uuid4().hex[:8]}", limit, 1.0)
    cg.create()
    try:
        p = cg.start([sys.executable, "-c", CHILD], cwd=ROOT, stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        try:
            assert p.stdout is not None and p.stdin is not None
            inside = json.loads(p.stdout.readline())
            assert inside["source"] == "cgroup-v1" and inside["limit"] == limit
            assert inside["dir"] == str(cg.mem_dir)
            assert 24 * MiB <= inside["used"] < limit
            outside = MemoryReader(pid=p.pid, rss=lambda: 0).read()  # via /proc/<pid>/cgroup
            assert outside.source == "cgroup-v1" and outside.limit_bytes == limit
            assert 24 * MiB <= outside.used_bytes < limit
            assert outside.used_bytes == pytest.approx(inside["used"], rel=0.25)
        finally:
            if p.stdin is not None:
                p.stdin.close()
            p.wait(30)
    finally:
        cg.cleanup()
    assert not cg.dirs  # removed
