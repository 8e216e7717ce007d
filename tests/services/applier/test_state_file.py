"""The applier's watermark survives a restart without the broker (--state-dir): recorded with
fsync and rename before the acknowledgement, read at the next start, a strict start when it is
missing or corrupt (services/applier/state.py)."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import msgspec
import pytest

from services.applier.actuators import CgroupLimits
from services.applier.service import ApplierService
from services.applier.state import StateFile
from services.bus.consume import Rejected
from services.bus.memory import MemoryBus
from shared.freshness import Watermark
from shared.messages import ApplyResult, encode
from shared.signing import sign
from tests.services.applier.test_verification import PUBLIC, RING, S, cgroup_dir, files, genuine

HOST = "h"


def applier(tmp_path: Path, now: list[float], bus: MemoryBus | None = None
            ) -> tuple[ApplierService, list[ApplyResult]]:  # fmt: skip
    """A fresh applier process: nothing in memory, the state directory on disk."""
    cg = tmp_path / "cg"
    if not cg.exists():  # the host's cgroup outlives the applier process
        cg.mkdir()
        cgroup_dir(cg)
    svc = ApplierService(bus or MemoryBus(), S, HOST, verifier=PUBLIC, clock=lambda: now[0],
                         enactors=[CgroupLimits(cg)],
                         state=StateFile(tmp_path / "state", HOST))  # fmt: skip
    acks: list[ApplyResult] = []
    svc.on_result = acks.append
    svc.load_state()
    return svc, acks


async def test_after_a_restart_a_replayed_decision_is_refused_and_a_new_one_applied(
    tmp_path: Path,
) -> None:
    now = [time.time()]
    svc, acks = applier(tmp_path, now)
    d1, d2 = genuine(1, now[0], p=0.1), genuine(2, now[0] + 0.5, p=0.9)
    for d in (d1, d2):
        await svc.on_decision(d)
    assert [a.status for a in acks] == ["applied", "applied"]
    assert (acks[1].sequence_epoch, acks[1].sequence) == (d2.sequence_epoch, 2)
    path = tmp_path / "state" / "applier-h.json"
    assert StateFile(tmp_path / "state", HOST).load().marks == {HOST: Watermark(d2.sequence_epoch, 2)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(path.parent)) == ["applier-h.json"]  # no temporary file left
    after = files(tmp_path / "cg")

    # SIGKILL and a restart: nothing in memory, no broker read-back (the bus here has none).
    now[0] += 1.0
    again, acks2 = applier(tmp_path, now)
    for replayed in (d2, d1):
        with pytest.raises(Rejected, match="^replayed_sequence"):
            await again.on_decision(replayed)
    assert files(tmp_path / "cg") == after and [a.status for a in acks2] == ["rejected"] * 2
    d3 = genuine(3, now[0], p=0.5)
    await again.on_decision(d3)
    assert acks2[-1].status == "applied" and acks2[-1].decision_id == d3.decision_id


@pytest.mark.parametrize("damage", ["missing", "corrupt", "torn"])
async def test_a_missing_or_corrupt_state_file_warns_and_starts_strict(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [time.time()]
    svc, _ = applier(tmp_path, now)  # a first start: no file yet, so strict from now on
    before_start = genuine(1, now[0] + 0.1, p=0.9)
    await svc.on_decision(before_start)
    now[0] += 2.0  # restarted 2 s later: the decision is genuine, in the window, and a replay
    path = tmp_path / "state" / "applier-h.json"
    if damage == "missing":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(b"\x00garbage")
    else:
        path.write_bytes(path.read_bytes()[:20])
    caplog.set_level(logging.WARNING, "qas.applier")
    caplog.clear()
    again, acks = applier(tmp_path, now)
    (warning,) = [r.getMessage() for r in caplog.records if "state file" in r.getMessage()]
    assert ("no state file" if damage == "missing" else "is corrupt") in warning
    assert "accepts only decisions made after this start" in warning
    with pytest.raises(Rejected, match="^replayed_sequence: decided before this applier started"):
        await again.on_decision(before_start)
    fresh = sign(msgspec.structs.replace(genuine(1, now[0] + 0.1, p=0.1), decision_id="fresh",
                                         key_id=None, signature=None), RING.signer)  # fmt: skip
    await again.on_decision(fresh)  # the first new decision is applied
    assert acks[-1].status == "applied" and StateFile(tmp_path / "state", HOST).load().problem is None


class _Crash(StateFile):
    """A state file whose write dies, as a process killed between enacting and recording."""

    def write(self, marks: dict[str, Watermark]) -> None:
        raise OSError(28, "No space left on device")


async def test_nothing_is_acknowledged_that_was_not_recorded_and_re_enacting_is_harmless(
    tmp_path: Path,
) -> None:
    now = [time.time()]
    svc, acks = applier(tmp_path, now)
    d1 = genuine(1, now[0], p=0.1)
    await svc.on_decision(d1)
    d2 = genuine(2, now[0] + 0.2, p=0.9)
    svc.state = _Crash(tmp_path / "state", HOST)
    with pytest.raises(OSError, match="No space"):
        await svc.on_decision(d2)  # enacted, not recorded
    assert [a.decision_id for a in acks] == [d1.decision_id]  # so not acknowledged either
    enacted_once = files(tmp_path / "cg")
    assert enacted_once["memory.high"] == str(d2.memory_budget_bytes)
    # Restarted, d2 is redelivered (its record was never committed): enacted a second time,
    # which leaves exactly what the first time left, then recorded and acknowledged.
    again, acks2 = applier(tmp_path, now)
    await again.on_decision(d2)
    assert files(tmp_path / "cg") == enacted_once
    assert [a.status for a in acks2] == ["applied"]
    assert again.state is not None and again.state.load().marks[HOST].sequence == 2


async def test_the_broker_read_back_is_the_second_source_of_the_watermark(tmp_path: Path) -> None:
    now = [time.time()]
    bus = MemoryBus()
    await bus.start()
    svc, acks = applier(tmp_path, now, bus)
    d1, d2 = genuine(1, now[0], p=0.1), genuine(2, now[0] + 0.2, p=0.9)
    for d in (d1, d2):
        await svc.on_decision(d)
    assert {a.sequence for a in acks} == {1, 2}
    for a in acks:  # what qas.applied holds
        await bus.publish(S.topics.applied, HOST, encode(a))
    (tmp_path / "state" / "applier-h.json").unlink()  # the file lost: the read-back remains
    again, _ = applier(tmp_path, now, bus)
    assert again.strict_since is not None
    await again.on_assigned({(S.topics.decisions, 0)})
    assert again.watermarks[HOST] == Watermark(d2.sequence_epoch, 2)
    # A genuine decision held back by the attacker (never delivered, so no known id), of an
    # older sequence: only the watermark read back can refuse it.
    withheld = sign(msgspec.structs.replace(genuine(1, now[0] + 0.1, p=0.5), decision_id="w",
                                            key_id=None, signature=None), RING.signer)  # fmt: skip
    again.strict_since = None  # the strict start aside: the read-back alone refuses it
    with pytest.raises(Rejected, match="^replayed_sequence: sequence"):
        await again.on_decision(withheld)
    await bus.stop()
