"""The security options as a user meets them: `qas keygen`, the key pair (--signing-key-file,
--verify-key-file), --legacy-hmac-keys, --insecure-unsigned."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from app.keys import load_key_file, load_verify_key_file, public_path
from tests.support.broker import TansuBroker, free_port

ROOT = Path(__file__).resolve().parents[2]


def qas(*args: str, env: dict[str, str] | None = None, timeout: float = 90
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})  # fmt: skip


def secret_of(path: Path) -> str:
    return path.read_text().splitlines()[-1].rsplit(":", 1)[1]


def test_keygen_writes_a_private_key_file_and_its_public_key_once(tmp_path: Path) -> None:
    path = tmp_path / "qas.key"
    old = os.umask(0o022)  # a permissive umask must not make the file readable by others
    try:
        r = qas("keygen", str(path), "--key-id", "desk-2026")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = load_key_file(path)
    assert ring.signer.key_id == "desk-2026" and len(secret_of(path)) == 64
    assert secret_of(path) not in r.stdout + r.stderr  # the key is in the file only
    pub = public_path(path)
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644 and secret_of(path) not in pub.read_text()
    assert load_verify_key_file(pub).keys[0].key_id == "desk-2026"
    assert f"{path} (mode 0600)" in r.stderr and f"{pub}" in r.stderr
    assert "--signing-key-file" in r.stderr and "--verify-key-file" in r.stderr
    again = qas("keygen", str(path))
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "exists" in again.stderr and load_key_file(path).signer.key_id == "desk-2026"


@pytest.mark.parametrize("command", ["decider", "applier"])
def test_a_lone_decider_or_applier_refuses_to_start_without_a_key_file(command: str) -> None:
    r = qas(command, "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--no-metrics"
            if command == "applier" else "--log-level=INFO")  # fmt: skip
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    flag = "--signing-key-file PATH" if command == "decider" else "--verify-key-file PATH.pub"
    assert line.startswith(f"error: qas {command} needs ")
    assert flag in line and "--insecure-unsigned" in line and "qas keygen PATH" in line


def test_a_bad_key_file_is_one_line_without_key_material(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("k1:ed25519-private:" + "ab" * 31 + "zz\n")
    path.chmod(0o600)
    r = qas("decider", "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--no-metrics",
            "--signing-key-file", str(path))  # fmt: skip
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "line 1: the key is not hexadecimal" in line and "abab" not in line


@pytest.mark.kafka
def test_the_decider_signs_with_the_private_key_and_the_applier_verifies_with_the_public_one(
    broker: TansuBroker, tmp_path: Path
) -> None:
    key = tmp_path / "qas.key"
    assert qas("keygen", str(key)).returncode == 0
    p = f"c{uuid.uuid4().hex[:6]}"
    common = ["--bootstrap-servers", broker.bootstrap, "--host-id", f"{p}-host",
              "--duration", "8", "--sensor-interval", "0.3"]  # fmt: skip

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "app.cli", *args, *common], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    procs = [
        start("observer"),
        start("decider", "--signing-key-file", str(key)),
        start("applier", "--verify-key-file", str(public_path(key)), "--json", "--no-metrics"),
    ]
    from kafka import KafkaProducer  # the engine's market signal, so there is a decision

    engine = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        for i in range(12):
            value = {"event_time": time.time(), "host_id": f"{p}-host", "value": 0.9 + i % 2 / 20}
            engine.send("market.entropy", json.dumps(value).encode(), key=f"{p}-host".encode())
            engine.flush(timeout=10)
            time.sleep(0.5)
    finally:
        engine.close()
    outs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert secret_of(key) not in err
    good = [r for r in map(json.loads, outs[2][0].splitlines()) if r["host_id"] == f"{p}-host"]
    assert good and {r["status"] for r in good} <= {"applied", "skipped"}, good
    assert any(r["status"] == "applied" for r in good), [r["reason"] for r in good]


@pytest.mark.kafka
def test_insecure_unsigned_warns_once_and_publishes_unsigned(broker: TansuBroker) -> None:
    r = qas("decider", "--insecure-unsigned", "--bootstrap-servers", broker.bootstrap,
            "--duration", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("--insecure-unsigned: decisions are published unsigned") == 1


def test_the_engine_adopts_only_verified_decisions_when_given_the_key_file(tmp_path: Path) -> None:
    import msgspec

    from core.engine import Adopter, signed_by
    from shared.config import DecisionConstants
    from shared.decision import decide
    from shared.messages import PriorState
    from shared.signing import SigningKey, parse_key_file, sign
    from tests.support.factories import inputs_for, reference_host

    private = parse_key_file(f"k1:ed25519-private:{'c3' * 32}")
    ring = private.public()  # the engine holds the public key only
    d, _ = decide(inputs_for(reference_host(), 0.9, 0.2, 0.5), PriorState(), host_id="desk",
                  now=time.time(), c=DecisionConstants())  # fmt: skip
    assert d is not None and d.confidence > 0.7
    signed = sign(d, private.signer)
    # the example engine's gate (core/engine: the client library's Adopter with the key ring)
    verified, trusting = Adopter("desk", verify=signed_by(ring)), Adopter("desk")
    forged = msgspec.structs.replace(signed, batch_size=1)
    wrong = sign(d, SigningKey("k1", b"\x07" * 32))
    assert verified.check(signed) is None
    assert [verified.consider(x) for x in (forged, wrong, d)] == [None, None, None]
    assert verified.refused == {"unverified": 3}
    assert trusting.check(forged) is None  # unverified: takes what the bus says


@pytest.mark.kafka
def test_the_engine_example_with_the_key_file_adopts_signed_decisions(
    broker: TansuBroker, tmp_path: Path
) -> None:
    key = tmp_path / "qas.key"
    assert qas("keygen", str(key)).returncode == 0
    host = f"eng-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--bootstrap-servers",
                            broker.bootstrap, "--no-metrics", "--host-id", host, "--duration", "30",
                            "--signing-key-file", str(key)], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(4)  # QAS's groups join first (as in tests/app/test_replay.py)
        r = subprocess.run([sys.executable, "examples/trading_engine.py", "--bootstrap-servers",
                            broker.bootstrap, "--duration", "12", "--host-id", host, "--rate", "60",
                            "--verify-key-file", str(public_path(key))], capture_output=True, text=True,
                           timeout=90, cwd=ROOT, env=env)  # fmt: skip
    finally:
        run.terminate()
        _, err = run.communicate(timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "not verified" not in r.stderr and "refused 0 unverified" in r.stdout
    assert int(r.stdout.split("adopted ")[1].split()[0]) >= 1, r.stdout + r.stderr[-2000:]
    assert secret_of(key) not in r.stderr + err


def test_qas_run_signs_with_an_ephemeral_key_and_verifies_with_nothing_to_configure() -> None:
    r = qas("run", "--duration", "3", "--json", "--no-metrics",
            env={"QAS_SIGNING_KEY_FILE": ""})  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    decisions = [o for o in lines if o["type"] == "decision"]
    results = [o for o in lines if o["type"] == "applied"]
    assert decisions and all(d["key_id"] == "ephemeral" and len(d["signature"]) == 128
                             for d in decisions)  # fmt: skip
    assert results and all(o["status"] in ("applied", "skipped") for o in results), results


def test_an_applier_given_the_private_key_refuses_it_and_names_the_public_file(
    tmp_path: Path,
) -> None:
    key = tmp_path / "qas.key"
    assert qas("keygen", str(key)).returncode == 0
    r = qas("applier", "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--no-metrics",
            "--signing-key-file", str(key))  # fmt: skip
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "verifies with public keys only" in line and f"--verify-key-file {key}.pub" in line
    r = qas(
        "applier",
        "--bootstrap-servers",
        f"127.0.0.1:{free_port()}",
        "--no-metrics",
        env={"QAS_VERIFY_KEY_FILE": str(key)},
    )  # the private file where the public one goes
    assert r.returncode == 2 and "a private key in a public key file" in r.stderr
    assert secret_of(key) not in r.stderr


def test_an_hmac_key_file_needs_the_migration_flag_which_warns(tmp_path: Path) -> None:
    old = tmp_path / "old.key"
    old.write_text(f"k-old:{'5e' * 32}\n")
    old.chmod(0o600)
    r = qas("decider", "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--no-metrics",
            "--signing-key-file", str(old))  # fmt: skip
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "an HMAC key" in line and "--legacy-hmac-keys" in line and "5e5e" not in line
    r = qas("run", "--duration", "2", "--json", "--no-metrics", "--signing-key-file", str(old),
            "--legacy-hmac-keys")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("--legacy-hmac-keys: signing with HMAC keys") == 1
    decisions = [o for o in map(json.loads, r.stdout.splitlines()) if o["type"] == "decision"]
    assert decisions and all(len(d["signature"]) == 64 for d in decisions)
