"""Security against the real broker: signed decisions, TLS and SASL (Tansu, started here).

- Signatures and replay protection: the real decider and a dry-run-free applier, pointed at a
  temporary directory of plain cgroup files; the attacker is a second client (kafka-python).
- TLS: Tansu 0.6 cannot serve TLS itself (tests/support/tls_front.py says why), so a TLS front
  with a certificate from a test CA (trustme) sits before it; every QAS client speaks TLS to it.
- SASL: Tansu with ``--authentication`` offers SCRAM-SHA-256 and SCRAM-SHA-512, but with its
  memory storage no user can be created while authentication is on (``tansu user create``
  itself is refused with NotAuthenticated, and without ``--authentication`` the broker offers
  no SASL mechanism at all). So every login to it is a wrong password: the refusal is tested
  here; the configuration a successful login uses is tested in tests/services/bus/test_security.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import trustme

from services.applier.actuators import CgroupLimits
from services.applier.metrics import Metrics
from services.applier.service import ApplierService
from services.bus.base import BusError
from services.bus.kafka import KafkaBus
from services.bus.security import BrokerSecurity
from services.decider.service import DeciderService
from shared.config import DecisionConstants, Settings, Topics
from shared.messages import (
    ApplyResult,
    DeadLetter,
    MarketEntropy,
    ScalingDecision,
    decode,
    encode,
)
from shared.signing import HmacKey, SigningKey, VerifyKey, parse_key_file, sign, verify
from tests.support.broker import TansuBroker, free_port
from tests.support.factories import reference_host, sensors, snapshot
from tests.support.signed_engine import public_key_engine_scenario
from tests.support.tls_front import TlsFront

pytestmark = pytest.mark.kafka

RING = parse_key_file(f"k1:ed25519-private:{'5a' * 32}\n")  # the decider's private key
PUBLIC = RING.public()  # all the applier holds
HOST = "sec-host"


def _settings() -> Settings:
    p = f"s{uuid.uuid4().hex[:8]}"  # this test's own topics on a shared broker
    return Settings(
        topics=Topics(**{name: f"{p}.{name}" for name in Topics.__struct_fields__}),
        # No jitter and no input smoothing: each entropy event decides at once.
        decision=DecisionConstants(max_jitter_seconds=0.0, smoothing_seconds=0.0),
    )


def _bus(bootstrap: str, s: Settings, security: BrokerSecurity | None = None) -> KafkaBus:
    return KafkaBus(bootstrap, connect_timeout=20, topics=s.topics.all(),
                    compacted_topics=s.topics.compacted(), security=security)  # fmt: skip


def cgroup_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "memory.high").write_text("max\n")
    (root / "cpu.max").write_text("max 100000\n")
    return root


def files(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(root.iterdir())}


def read_all(bootstrap: str, topic: str, until: object, timeout: float = 30.0,
             **security: object) -> list[bytes]:  # fmt: skip
    """Read a topic from the start with kafka-python (a second client) until ``until(values)``."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security)
    try:
        deadline = time.monotonic() + timeout
        parts: set[int] | None = None
        while not parts and time.monotonic() < deadline:
            parts = c.partitions_for_topic(topic)
            time.sleep(0.05) if not parts else None
        tps = [TopicPartition(topic, p) for p in sorted(parts or {0})]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out: list[bytes] = []
        while time.monotonic() < deadline and not until(out):  # type: ignore[operator]
            for msgs in c.poll(timeout_ms=200).values():
                out += [m.value for m in msgs]
        assert until(out), f"{topic}: condition not met in {timeout} s ({len(out)} records)"  # type: ignore[operator]
        return out
    finally:
        c.close()


def publish_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """The attacker: any client that can write to the decisions topic."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for v in values:
            p.send(topic, value=v, key=HOST.encode())
        p.flush(timeout=20)
    finally:
        p.close()


async def _start(bus: KafkaBus, s: Settings, cg: Path, skew: list[float]):  # type: ignore[no-untyped-def]
    await bus.start()
    stop = asyncio.Event()
    decider = DeciderService(bus, s, HOST, group=f"{s.topics.decisions}-d", signer=RING)
    applier = ApplierService(bus, s, HOST, group=f"{s.topics.decisions}-a", verifier=PUBLIC,
                             metrics=Metrics(), enactors=[CgroupLimits(cg)],
                             clock=lambda: time.time() + skew[0])  # fmt: skip
    tasks = [asyncio.create_task(svc.run(stop)) for svc in (decider, applier)]
    return stop, decider, applier, tasks


async def _market(bus: KafkaBus, s: Settings, decider: DeciderService, entropy: float,
                  n: int) -> None:  # fmt: skip
    """The n-th round of inputs: hardware and sensors first (topics are not ordered against
    each other), then the engine's entropy; returns once the decider has handled all three."""
    now = time.time()
    t = s.topics
    await bus.publish(t.hardware, HOST, encode(snapshot(reference_host(), HOST, t=now)))
    await bus.publish(t.sensors, HOST, encode(sensors(HOST, t=now)))
    async with asyncio.timeout(30):
        await decider.drained(t.hardware, n)
        await decider.drained(t.sensors, n)
    await bus.publish(t.entropy, HOST, encode(MarketEntropy(event_time=now, host_id=HOST,
                                                            value=entropy)))  # fmt: skip
    async with asyncio.timeout(30):
        await decider.drained(t.entropy, n)


def results_for(raw: list[bytes]) -> dict[str, ApplyResult]:
    out: dict[str, ApplyResult] = {}
    for r in raw:
        a = decode(r, ApplyResult)
        out[a.decision_id] = a  # the latest acknowledgement of each id
    return out


async def test_forged_altered_wrong_key_and_replayed_decisions_change_nothing(
    broker: TansuBroker, tmp_path: Path
) -> None:
    s, skew = _settings(), [0.0]
    cg = cgroup_dir(tmp_path / "cg")
    bus = _bus(broker.bootstrap, s)
    stop, decider, applier, tasks = await _start(bus, s, cg, skew)
    t = s.topics
    try:
        await _market(bus, s, decider, 0.8, 1)
        async with asyncio.timeout(30):  # every genuine decision so far reached the applier
            await applier.drained(t.decisions, decider.stats["decisions"])
        assert applier.stats["applied"] >= 1, applier.stats
        genuine = [decode(r, ScalingDecision) for r in await asyncio.to_thread(
            read_all, broker.bootstrap, t.decisions, lambda v: len(v) >= 1)]  # fmt: skip
        d = genuine[-1]
        assert verify(d, PUBLIC) is None and files(cg)["memory.high"] == str(d.memory_budget_bytes)
        baseline = files(cg)

        public = PUBLIC.keys[0]
        assert isinstance(public, VerifyKey)
        raw = public.public_bytes

        def evil(tag: str, k: int, **kw: object) -> ScalingDecision:
            return msgspec.structs.replace(d, decision_id=f"{tag}-1", sequence=d.sequence + k,
                                           memory_budget_bytes=4096, **kw)  # fmt: skip

        attacks = {
            "forged": evil("forged", 10, signature="ab" * 64),  # a made-up signature
            "unsigned": evil("unsigned", 11, key_id=None, signature=None),
            "wrong-key": sign(evil("wrong-key", 12), SigningKey("k1", b"\x01" * 32)),
            "unknown-key": sign(evil("unknown-key", 13), SigningKey("mallory", b"\x02" * 32)),
            "altered": msgspec.structs.replace(d, memory_budget_bytes=4096),  # same id and MAC
            # What a host holding only the public key could make of it.
            "seeded": sign(evil("seeded", 14), SigningKey("k1", raw)),
            "maced": sign(evil("maced", 15), HmacKey("k1", raw)),
            # A genuine, correctly signed decision held back and injected after a newer one.
            "held-back": sign(msgspec.structs.replace(d, decision_id="held-back-1",
                                                      memory_budget_bytes=4096), RING.signer),
        }  # fmt: skip
        await asyncio.to_thread(publish_raw, broker.bootstrap, t.decisions,
                                [encode(a) for a in attacks.values()])  # fmt: skip
        ids = {a.decision_id for a in attacks.values()}
        def rejected_in(v: list[bytes]) -> list[ApplyResult]:
            return [a for a in map(lambda x: decode(x, ApplyResult), v) if a.status == "rejected"]

        rejected = rejected_in(await asyncio.to_thread(
            read_all, broker.bootstrap, t.applied, lambda v: len(rejected_in(v)) >= len(attacks)))  # fmt: skip
        codes = {r.decision_id: r.reason.split(":")[0] for r in rejected}
        assert codes == {"forged-1": "bad_signature", "unsigned-1": "unsigned",
                         "wrong-key-1": "bad_signature", "unknown-key-1": "unknown_key",
                         d.decision_id: "bad_signature",  # the altered copy of d
                         "seeded-1": "bad_signature", "maced-1": "legacy_hmac",
                         "held-back-1": "replayed_sequence"}, codes  # fmt: skip
        assert all(r.engine_config is None for r in rejected)  # nothing an engine could adopt
        assert files(cg) == baseline  # nothing enacted

        # The same genuine record replayed half a minute later (the applier's clock moved on).
        skew[0] = 31.0
        await asyncio.to_thread(publish_raw, broker.bootstrap, t.decisions, [encode(d)])
        async with asyncio.timeout(30):
            await applier.drained(t.decisions, decider.stats["decisions"] + len(attacks) + 1)
        skew[0] = 0.0
        assert applier.stats["rejected"] == len(attacks) + 1
        assert files(cg) == baseline
        # Replayed at once it is a redelivery: acknowledged with its first result, not enacted
        # again (the operator's manual change below survives).
        (cg / "memory.high").write_text("123\n")
        await asyncio.to_thread(publish_raw, broker.bootstrap, t.decisions, [encode(d)])
        async with asyncio.timeout(30):
            await applier.drained(t.decisions, decider.stats["decisions"] + len(attacks) + 2)
        assert applier.stats["redelivered"] == 1 and (cg / "memory.high").read_text() == "123\n"

        letters = [decode(x, DeadLetter) for x in await asyncio.to_thread(
            read_all, broker.bootstrap, t.dlq, lambda v: len(v) >= len(attacks) + 1)]  # fmt: skip
        assert {decode(x.payload, ScalingDecision).decision_id for x in letters} == ids | {
            d.decision_id}
        assert all(x.reason.startswith("rejected: ") and x.service == "applier" for x in letters)
        page = applier.metrics.render().decode()
        assert 'qas_decisions_rejected_total{reason="bad_signature"} 4.0' in page
        assert 'qas_decisions_rejected_total{reason="legacy_hmac"} 1.0' in page
        assert 'qas_decisions_rejected_total{reason="stale"} 1.0' in page
        assert "5a" * 32 not in page

        # Genuine decisions still apply: a high-entropy market raises the budget.
        before = decider.stats["decisions"]
        await _market(bus, s, decider, 1.0, 2)
        async with asyncio.timeout(30):
            await applier.drained(t.decisions, decider.stats["decisions"] + len(attacks) + 2)
        assert decider.stats["decisions"] > before
        newest = [decode(r, ScalingDecision) for r in await asyncio.to_thread(
            read_all, broker.bootstrap, t.decisions,
            lambda v: len(v) >= decider.stats["decisions"] + len(attacks) + 2)]  # fmt: skip
        last = next(x for x in reversed(newest) if x.key_id and verify(x, PUBLIC) is None)
        assert (cg / "memory.high").read_text() == str(last.memory_budget_bytes)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.stop()


async def test_an_engine_with_only_the_public_key_adopts_genuine_and_refuses_forged(
    broker: TansuBroker,
) -> None:
    s = _settings()
    bus = _bus(broker.bootstrap, s)
    await bus.start()
    try:
        await public_key_engine_scenario(bus, s, f"{HOST}-engine", timeout=40.0)
    finally:
        await bus.stop()


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    return paths


@pytest.fixture(scope="module")
def tls_front(pki: dict[str, Path]) -> Iterator[TlsFront]:
    """Tansu behind a TLS front; the broker advertises the front, so clients stay on TLS."""
    upstream = free_port()
    front = TlsFront(pki["cert"], pki["key"], upstream)
    tansu = TansuBroker(upstream, advertised_port=front.port).start()
    try:
        yield front.start()
    finally:
        front.stop()
        tansu.stop()


async def test_the_pipeline_runs_over_tls_and_its_decisions_arrive_signed(
    tls_front: TlsFront, pki: dict[str, Path], tmp_path: Path
) -> None:
    s = _settings()
    cg = cgroup_dir(tmp_path / "cg")
    bus = _bus(tls_front.bootstrap, s, BrokerSecurity("SSL", ssl_cafile=pki["ca"]))
    stop, _decider, _applier, tasks = await _start(bus, s, cg, [0.0])
    try:
        await _market(bus, s, _decider, 0.9, 1)
        tls = {"security_protocol": "SSL", "ssl_cafile": str(pki["ca"])}
        applied = results_for(await asyncio.to_thread(
            read_all, tls_front.bootstrap, s.topics.applied,
            lambda v: any(a.status == "applied" for a in results_for(v).values()), **tls))  # fmt: skip
        decisions = [decode(r, ScalingDecision) for r in await asyncio.to_thread(
            read_all, tls_front.bootstrap, s.topics.decisions, lambda v: len(v) >= 1, **tls)]  # fmt: skip
        assert decisions and all(verify(x, PUBLIC) is None for x in decisions)
        done = next(a for a in applied.values() if a.status == "applied")
        by_id = {x.decision_id: x for x in decisions}
        assert (cg / "memory.high").read_text() != "max\n"
        assert done.decision_id in by_id
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.stop()


async def test_a_client_without_the_ca_is_refused_with_one_line(tls_front: TlsFront) -> None:
    bus = KafkaBus(tls_front.bootstrap, connect_timeout=20, security=BrokerSecurity("SSL"))
    with pytest.raises(BusError) as info:
        await bus.start()
    message = str(info.value)
    assert message.startswith(f"TLS: the broker at {tls_front.bootstrap} presented a "
                              "certificate this client does not trust")  # fmt: skip
    assert "--ssl-cafile" in message and "\n" not in message


# --- SASL -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[TansuBroker]:
    b = TansuBroker(authentication=True).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
async def test_a_wrong_password_is_refused_with_one_line(
    sasl_broker: TansuBroker, mechanism: str
) -> None:
    sec = BrokerSecurity("SASL_PLAINTEXT", sasl_mechanism=mechanism, sasl_username="qas",
                         sasl_password="not-the-password")  # fmt: skip
    bus = KafkaBus(sasl_broker.bootstrap, connect_timeout=20, security=sec)
    with pytest.raises(BusError) as info:
        await bus.start()
    message = str(info.value)
    assert message.startswith(f"SASL: the broker at {sasl_broker.bootstrap} refused {mechanism} "
                              "authentication as 'qas'")  # fmt: skip
    assert "not-the-password" not in message and "\n" not in message


def test_qas_says_what_is_wrong_in_one_line(
    tls_front: TlsFront, sasl_broker: TansuBroker, tmp_path: Path
) -> None:
    """The command line: `qas observer` exits 1 with one line for each refusal."""
    def qas(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app", "observer", *args],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "QAS_CONNECT_TIMEOUT": "20", **env})  # fmt: skip

    no_ca = qas("--bootstrap-servers", tls_front.bootstrap, "--security-protocol", "SSL")
    password = tmp_path / "pw"
    password.write_text("wrong-pw\n")
    bad_pw = qas("--bootstrap-servers", sasl_broker.bootstrap, "--security-protocol",
                 "SASL_PLAINTEXT", "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "qas",
                 "--sasl-password-file", str(password))  # fmt: skip
    env_pw = qas("--bootstrap-servers", sasl_broker.bootstrap, QAS_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                 QAS_SASL_MECHANISM="SCRAM-SHA-512", QAS_SASL_USERNAME="qas",
                 QAS_SASL_PASSWORD="wrong-env-pw")  # fmt: skip
    for proc, start in [(no_ca, "error: TLS: the broker at"), (bad_pw, "error: SASL: the broker"),
                        (env_pw, "error: SASL: the broker")]:  # fmt: skip
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert len(lines) == 1 and lines[0].startswith(start), proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert "wrong-pw" not in proc.stderr and "wrong-env-pw" not in proc.stderr
