"""Signed decisions (shared/signing.py): pure."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from shared.config import DecisionConstants
from shared.decision import decide
from shared.messages import InvalidMessage, PriorState, ScalingDecision, decode, encode
from shared.signing import (
    DOMAIN,
    KeyFileError,
    KeyRing,
    SigningKey,
    canonical_bytes,
    parse_key_file,
    sign,
    sign_encoded,
    verify,
)
from tests.support.factories import inputs_for, reference_host

SECRET_HEX = "11" * 32
OTHER_HEX = "22" * 32


def _decision(now: float = 1000.0) -> ScalingDecision:
    d, _ = decide(inputs_for(reference_host(), 0.9, 0.2, 0.5), PriorState(), host_id="h",
                  now=now, c=DecisionConstants(max_jitter_seconds=0.0))  # fmt: skip
    assert d is not None
    return d


def _on_the_wire(d: ScalingDecision) -> ScalingDecision:
    """What an applier decodes from the published bytes."""
    return decode(encode(d), ScalingDecision)


RING = parse_key_file(f"new:{SECRET_HEX}\nold:{OTHER_HEX}\n")


def test_a_signed_decision_verifies_after_the_wire_and_names_its_key() -> None:
    signed = sign(_decision(), RING.signer)
    assert signed.key_id == "new" and signed.signature is not None
    assert len(signed.signature) == 64
    assert verify(_on_the_wire(signed), RING) is None


def test_the_canonical_bytes_are_the_domain_then_the_json_without_the_signature() -> None:
    signed = sign(_decision(), RING.signer)
    data = canonical_bytes(signed)
    assert data.startswith(DOMAIN)
    body = msgspec.json.decode(data[len(DOMAIN) :])
    assert body["signature"] is None and body["key_id"] == "new"
    assert body == {**msgspec.json.decode(encode(signed)), "signature": None}


def test_every_key_verifies_and_only_the_first_signs() -> None:
    by_old = sign(_decision(), parse_key_file(f"old:{OTHER_HEX}").signer)
    assert verify(_on_the_wire(by_old), RING) is None  # rotation: the old key still verifies


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (dict(signature=None, key_id=None), "unsigned"),
        (dict(key_id="nobody"), "unknown_key"),
        (dict(scaling_factor=2.9), "bad_signature"),  # altered after signing
        (dict(host_id="another-host"), "bad_signature"),
        (dict(sequence_epoch=1), "bad_signature"),
        (dict(signature="0" * 64), "bad_signature"),
        (dict(signature="not hex"), "bad_signature"),
    ],
)
def test_unsigned_unknown_altered_and_forged_decisions_fail(
    change: dict[str, object], code: str
) -> None:
    signed = sign(_decision(), RING.signer)
    bad = _on_the_wire(msgspec.structs.replace(signed, **change))  # type: ignore[arg-type]
    fault = verify(bad, RING)
    assert fault is not None and fault[0] == code


def test_a_decision_signed_with_a_wrong_key_of_the_same_id_fails() -> None:
    impostor = SigningKey("new", bytes.fromhex("33" * 32))
    fault = verify(_on_the_wire(sign(_decision(), impostor)), RING)
    assert fault is not None and fault[0] == "bad_signature"


def test_no_secret_in_repr_errors_or_reasons() -> None:
    assert SECRET_HEX not in repr(RING) and SECRET_HEX not in str(RING.signer)
    assert "hidden" in repr(RING.signer)
    for text in (f"k:{SECRET_HEX[:-2]}zz", f"bad id!:{SECRET_HEX}", f"k:{SECRET_HEX[:20]}"):
        with pytest.raises(KeyFileError) as info:
            parse_key_file(text)
        assert SECRET_HEX[:20] not in str(info.value) and "line 1" in str(info.value)
    signed = sign(_decision(), RING.signer)
    altered = _on_the_wire(msgspec.structs.replace(signed, scaling_factor=2.9))
    fault = verify(altered, RING)
    assert fault is not None
    expected = RING.signer.mac(canonical_bytes(altered))  # the MAC an oracle would leak
    assert expected not in fault[1] and SECRET_HEX not in fault[1]


def test_key_file_parsing() -> None:
    ring = parse_key_file(f"# rotated 2026-11\n\na.1:{SECRET_HEX}\n  b-2 : {OTHER_HEX}  \n")
    assert [k.key_id for k in ring.keys] == ["a.1", "b-2"] and ring.signer.key_id == "a.1"
    for bad, why in [
        ("", "no keys"),
        (f"{SECRET_HEX}", "expected key_id:hex"),
        (f"a:{SECRET_HEX}\na:{OTHER_HEX}", "twice"),
        ("a:abcd", "shorter than 16 bytes"),
    ]:
        with pytest.raises(KeyFileError, match=why):
            parse_key_file(bad)
    line = SigningKey.generate("gen").line()
    assert parse_key_file(line).signer.key_id == "gen"
    assert KeyRing.ephemeral().signer.key_id == "ephemeral"


def test_a_whole_number_in_a_float_field_signs_as_the_applier_will_decode_it() -> None:
    built = msgspec.structs.replace(_decision(), scaling_factor=1)  # type: ignore[arg-type]
    assert b'"scaling_factor":1,' in msgspec.json.encode(built)  # decodes as 1.0
    assert verify(_on_the_wire(sign(built, RING.signer)), RING) is None


# Published before sign_encoded (issue 17) by the encode-decode-encode signer: key "fixed",
# secret 0x11 * 32. The applier must keep accepting it, and signing its content again must give
# the same bytes and signature.
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "signing" / "decision-v1.json"
FIXED = parse_key_file(f"fixed:{SECRET_HEX}")
FIXED_SIGNATURE = "7bd3657f76257bc1ad045a22369c94ac43d0c1f44287ec07d5d34fcd243d9f93"
# The same content with scaling_factor and memory_adjustment built as the int 2.
FIXED_INT_SIGNATURE = "e7359b80001b275bc9f44e70a420bcaba746e9d6704daddd68387d17167c1d1f"


def test_a_decision_signed_before_sign_encoded_still_verifies_and_signs_the_same() -> None:
    wire = FIXTURE.read_bytes().rstrip(b"\n")
    published = decode(wire, ScalingDecision)
    assert published.signature == FIXED_SIGNATURE
    assert verify(published, FIXED) is None
    unsigned = msgspec.structs.replace(published, key_id=None, signature=None)
    signed, data = sign_encoded(unsigned, FIXED.signer)
    assert data == wire and signed == published
    whole = msgspec.structs.replace(unsigned, scaling_factor=2, memory_adjustment=2)  # type: ignore[arg-type]
    again, data = sign_encoded(whole, FIXED.signer)
    assert again.signature == FIXED_INT_SIGNATURE and again.scaling_factor == 2.0
    assert data == encode(again) and verify(decode(data, ScalingDecision), FIXED) is None


@pytest.mark.parametrize("now", [1000.0, 1234.5678])
def test_sign_encoded_bytes_are_encode_of_the_signed_decision(now: float) -> None:
    signed, data = sign_encoded(_decision(now), RING.signer)
    assert data == encode(signed)
    assert signed == sign(_decision(now), RING.signer)
    assert verify(decode(data, ScalingDecision), RING) is None


def test_sign_encoded_validates_once_and_decodes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = msgspec.json.decode
    monkeypatch.setattr(msgspec.json, "decode", lambda *a, **k: calls.append(a) or real(*a, **k))
    sign_encoded(_decision(), RING.signer)
    assert calls == []
    with pytest.raises(InvalidMessage, match="not a finite number"):
        sign_encoded(msgspec.structs.replace(_decision(), confidence=math.nan), RING.signer)
    with pytest.raises(InvalidMessage, match="<= 100.0"):  # after an int: still its own fault
        bad = msgspec.structs.replace(_decision(), scaling_factor=1, memory_adjustment=101.0)  # type: ignore[arg-type]
        sign_encoded(bad, RING.signer)
