"""The applier refuses unverified and replayed decisions (embedded bus; the real broker is in
tests/integration/test_security.py): rejected result, metric, DLQ, and no change anywhere."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.applier.actuators import CgroupLimits
from services.applier.metrics import REJECT_REASONS, Metrics
from services.applier.service import ApplierService
from services.bus.consume import Rejected
from services.bus.memory import MemoryBus
from shared.config import DecisionConstants, Settings
from shared.decision import decide
from shared.messages import ApplyResult, DeadLetter, PriorState, ScalingDecision, decode, encode
from shared.signing import HmacKey, KeyRing, SigningKey, parse_key_file, sign
from tests.support.factories import inputs_for, reference_host

S = Settings(decision=DecisionConstants(max_jitter_seconds=0.0))
RING = parse_key_file(f"k1:ed25519-private:{'ab' * 32}\n")  # the decider's
PUBLIC = RING.public()  # what the applier holds


def cgroup_dir(root: Path) -> Path:
    """A cgroup v2 directory of plain files, as CgroupLimits sees one."""
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "memory.high").write_text("max\n")
    (root / "cpu.max").write_text("max 100000\n")
    return root


def files(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(root.iterdir())}


def genuine(seq: int, now: float, p: float = 0.5) -> ScalingDecision:
    d, _ = decide(inputs_for(reference_host(), 0.5, 0.2, p), PriorState(sequence=seq - 1),
                  host_id="h", now=now, c=S.decision)  # fmt: skip
    assert d is not None
    return sign(d, RING.signer)


async def test_rejected_decisions_touch_nothing_and_are_acknowledged_counted_and_dead_lettered(
    tmp_path: Path,
) -> None:
    cg = cgroup_dir(tmp_path)
    before = files(cg)
    now = time.time()
    bus, metrics = MemoryBus(), Metrics()
    svc = ApplierService(bus, S, "h", metrics=metrics, verifier=PUBLIC,
                         enactors=[CgroupLimits(cg)])  # fmt: skip
    good = genuine(1, now)
    unsigned = msgspec.structs.replace(good, decision_id="u", key_id=None, signature=None)
    forged = msgspec.structs.replace(good, decision_id="f", signature="f" * 128)
    wrong_key = msgspec.structs.replace(
        sign(genuine(2, now), SigningKey("k1", b"x" * 32)), decision_id="w"
    )
    altered = msgspec.structs.replace(genuine(3, now), memory_budget_bytes=4096)
    stale = genuine(4, now - 31)
    ahead = genuine(5, now + 6)
    # signed the previous release's way (HMAC), here with the public key's bytes as the secret
    old_way = sign(msgspec.structs.replace(genuine(6, now), decision_id="o", key_id=None,
                                           signature=None),
                   HmacKey("k1", PUBLIC.keys[0].public_bytes))  # type: ignore[union-attr]  # fmt: skip
    bad = [unsigned, forged, wrong_key, altered, stale, ahead, old_way]
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    reader = bus.consumer([S.topics.applied, S.topics.dlq], "reader")
    await reader.start()
    for d in bad:
        await bus.publish(S.topics.decisions, "h", encode(d))
    results: list[ApplyResult] = []
    letters: list[DeadLetter] = []
    async with asyncio.timeout(5):
        while len(results) < len(bad) or len(letters) < len(bad):
            for r in await reader.getmany(timeout=0.1):
                if r.topic == S.topics.applied:
                    results.append(decode(r.value, ApplyResult))
                else:
                    letters.append(decode(r.value, DeadLetter))
    assert files(cg) == before  # nothing written
    assert [r.status for r in results] == ["rejected"] * len(bad)
    assert [r.reason.split(":")[0] for r in results] == [
        "unsigned", "bad_signature", "bad_signature", "bad_signature", "stale", "future",
        "legacy_hmac"]  # fmt: skip
    assert all(r.engine_config is None for r in results)  # nothing an engine could adopt
    assert [decode(x.payload, ScalingDecision).decision_id for x in letters] == [
        d.decision_id for d in bad]  # fmt: skip
    assert all(x.reason.startswith("rejected: ") for x in letters)
    assert "rejected: legacy_hmac: HMAC-signed (key id 'k1')" in letters[-1].reason
    # The gauges never saw them: a forged decision does not even show as the current factor.
    assert svc.metrics.scaling_factor.labels("h")._value.get() == 0.0

    await bus.publish(S.topics.decisions, "h", encode(good))
    async with asyncio.timeout(5):
        while len(results) < len(bad) + 1:
            results += [decode(r.value, ApplyResult) for r in await reader.getmany(timeout=0.1)
                        if r.topic == S.topics.applied]  # fmt: skip
    stop.set()
    await task
    assert results[-1].status == "applied"
    assert files(cg)["memory.high"] == str(good.memory_budget_bytes)

    page = metrics.render().decode()
    rejected = {
        s.labels["reason"]: s.value
        for f in text_string_to_metric_families(page)
        if f.name == "qas_decisions_rejected"
        for s in f.samples
        if s.name == "qas_decisions_rejected_total"
    }
    assert set(rejected) == set(REJECT_REASONS)
    assert rejected == {"unsigned": 1, "unknown_key": 0, "bad_signature": 3, "stale": 1,
                        "future": 1, "replayed_sequence": 0, "legacy_hmac": 1}  # fmt: skip
    assert 'qas_applies_total{result="rejected"} 7.0' in page
    assert "ab" * 32 not in page


async def test_sequence_replay_redelivery_and_a_decider_restart(tmp_path: Path) -> None:
    cg = cgroup_dir(tmp_path)
    now = [time.time()]
    svc = ApplierService(MemoryBus(), S, "h", verifier=PUBLIC, enactors=[CgroupLimits(cg)],
                         clock=lambda: now[0])  # fmt: skip
    published: list[ApplyResult] = []
    svc.on_result = published.append
    d1 = genuine(1, now[0], p=0.1)
    d2 = genuine(2, now[0] + 0.5, p=0.9)
    withheld = msgspec.structs.replace(genuine(2, now[0] + 0.7, p=0.1), decision_id="withheld")
    withheld = sign(withheld, RING.signer)
    for d in (d1, d2):
        await svc.on_decision(d)
    after_d2 = files(cg)
    await svc.on_decision(d1)  # an exact repeat of a known id: its first result again
    assert published[-1] == published[0] and svc.stats["redelivered"] == 1
    with pytest.raises(Rejected, match="^replayed_sequence"):
        await svc.on_decision(withheld)  # held back, then injected after a newer one
    now[0] += 31.0
    with pytest.raises(Rejected, match="^stale"):
        await svc.on_decision(d2)  # the same record again, half a minute later
    assert files(cg) == after_d2
    # A restarted decider starts again at sequence 1 with a later epoch: accepted.
    restarted = msgspec.structs.replace(genuine(1, now[0], p=0.1), decision_id="r1",
                                        sequence_epoch=d2.sequence_epoch + 1)  # fmt: skip
    await svc.on_decision(sign(restarted, RING.signer))
    assert published[-1].status == "applied"


def test_an_ephemeral_ring_signs_what_it_verifies() -> None:
    ring = KeyRing.ephemeral()
    assert ring.signer is ring.get("ephemeral")


async def test_a_decision_of_a_newer_schema_is_dead_lettered_with_the_reason(
    tmp_path: Path,
) -> None:
    """A newer schema may change what fields mean: the applier does not guess, it dead-letters
    the record with the reason, enacts nothing, and goes on with the next decision."""
    cg = cgroup_dir(tmp_path)
    before = files(cg)
    bus = MemoryBus()
    svc = ApplierService(bus, S, "h", verifier=PUBLIC, enactors=[CgroupLimits(cg)])
    now = time.time()
    newer = sign(msgspec.structs.replace(genuine(1, now), key_id=None, signature=None,
                                         schema_version=2), RING.signer)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    reader = bus.consumer([S.topics.applied, S.topics.dlq], "reader")
    await reader.start()
    await bus.publish(S.topics.decisions, "h", encode(newer))
    letters: list[DeadLetter] = []
    async with asyncio.timeout(5):
        while not letters:
            letters += [decode(r.value, DeadLetter) for r in await reader.getmany(timeout=0.1)
                        if r.topic == S.topics.dlq]  # fmt: skip
    assert letters[0].reason.startswith("undecodable: ScalingDecision: schema_version 2 is "
                                        "newer than 1")  # fmt: skip
    assert letters[0].payload == encode(newer) and files(cg) == before
    good = genuine(2, now + 0.1)
    await bus.publish(S.topics.decisions, "h", encode(good))
    results: list[ApplyResult] = []
    async with asyncio.timeout(5):
        while not results:
            results += [decode(r.value, ApplyResult) for r in await reader.getmany(timeout=0.1)
                        if r.topic == S.topics.applied]  # fmt: skip
    stop.set()
    await task
    assert [r.status for r in results] == ["applied"] and svc.stats["dead_letters"] == 1
