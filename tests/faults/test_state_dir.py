"""SIGKILL an applier with --state-dir on the real broker, restart it, replay a genuine decision
held back by an attacker: rejected as replayed_sequence; the next new decision applies. (Without
the broker's read-back: tests/services/applier/test_state_file.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
import pytest

from app.keys import public_path, write_key_pair
from shared.config import DecisionConstants
from shared.decision import decide
from shared.messages import PriorState, ScalingDecision, encode
from shared.signing import SigningKey, sign
from tests.support.broker import TansuBroker
from tests.support.factories import inputs_for, reference_host

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
C = DecisionConstants(max_jitter_seconds=0.0)


def _decision(key: SigningKey, host: str, seq: int, p: float, tag: str) -> ScalingDecision:
    d, _ = decide(inputs_for(reference_host(), 0.5, 0.2, p), PriorState(sequence=seq - 1),
                  host_id=host, now=time.time(), c=C)  # fmt: skip
    assert d is not None
    return sign(msgspec.structs.replace(d, decision_id=f"{host}-{tag}", sequence_epoch=1), key)


def _publish(bootstrap: str, host: str, d: ScalingDecision) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        p.send("qas.decisions", value=encode(d), key=host.encode())
        p.flush(timeout=20)
    finally:
        p.close()


def _start(bootstrap: str, host: str, key: Path, state: Path, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as o:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "applier", "--bootstrap-servers", bootstrap,
             "--host-id", host, "--verify-key-file", str(public_path(key)), "--state-dir",
             str(state), "--json", "--no-metrics", "--dry-run"],
            stdout=o, stderr=subprocess.DEVNULL, cwd=ROOT, env=dict(os.environ))  # fmt: skip


def _result(out: Path, decision_id: str, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in out.read_text().splitlines():
            r = json.loads(line)
            if r.get("type") == "applied" and r.get("decision_id") == decision_id:
                return r  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"no result for {decision_id} in {timeout} s: {out.read_text()[-2000:]}")


def test_after_sigkill_a_held_back_decision_is_refused_and_the_next_applies(
    broker: TansuBroker, tmp_path: Path
) -> None:
    host = f"st-{uuid.uuid4().hex[:8]}"
    key_file, state = tmp_path / "qas.key", tmp_path / "state"
    key = write_key_pair(key_file)
    # A first start: no state file yet, so the applier starts strict (decisions made after it).
    first = _start(broker.bootstrap, host, key_file, state, tmp_path / "a.jsonl")
    try:
        time.sleep(4)  # the applier's group joins (as in tests/app/test_replay.py)
        d1 = _decision(key, host, 1, 0.1, "d1")
        withheld = _decision(key, host, 2, 0.9, "withheld")  # genuine; the attacker keeps it
        d3 = _decision(key, host, 3, 0.5, "d3")
        _publish(broker.bootstrap, host, d1)
        assert _result(tmp_path / "a.jsonl", d1.decision_id)["status"] == "applied"
        _publish(broker.bootstrap, host, d3)
        assert _result(tmp_path / "a.jsonl", d3.decision_id)["status"] == "applied"
        marks = json.loads((state / f"applier-{host}.json").read_text())
        assert marks["hosts"][host] == {"epoch": 1, "sequence": 3}
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    again = _start(broker.bootstrap, host, key_file, state, tmp_path / "b.jsonl")
    try:
        time.sleep(4)
        _publish(broker.bootstrap, host, withheld)  # newer event time, older sequence
        r = _result(tmp_path / "b.jsonl", withheld.decision_id)
        assert r["status"] == "rejected"
        assert str(r["reason"]).startswith("replayed_sequence: sequence 2 (epoch 1) is not")
        d4 = _decision(key, host, 4, 0.2, "d4")
        _publish(broker.bootstrap, host, d4)
        assert _result(tmp_path / "b.jsonl", d4.decision_id)["status"] == "applied"
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0
