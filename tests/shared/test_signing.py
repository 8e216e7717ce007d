"""Signed decisions (shared/signing.py): Ed25519, and HMAC only in a migration window. Pure."""

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
    HmacKey,
    KeyFileError,
    KeyRing,
    LegacyKeyError,
    SigningKey,
    VerifyKey,
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


NEW, OLD = SigningKey("new", bytes.fromhex(SECRET_HEX)), SigningKey("old", bytes.fromhex(OTHER_HEX))
RING = parse_key_file(f"{NEW.line()}\n{OLD.line()}\n")  # the decider's file: private keys
PUBLIC = parse_key_file(f"{NEW.public.line()}\n{OLD.public.line()}\n", public_only=True)


def test_a_signed_decision_verifies_with_the_public_key_alone_and_names_its_key() -> None:
    signed = sign(_decision(), RING.signer)
    assert signed.key_id == "new" and signed.signature is not None
    assert len(signed.signature) == 128  # 64 bytes of Ed25519, hex
    assert verify(_on_the_wire(signed), PUBLIC) is None
    assert verify(_on_the_wire(signed), RING) is None  # `qas run`: one ring signs and verifies
    assert not any(k.can_sign for k in PUBLIC.keys) and not PUBLIC.has_private


def test_the_canonical_bytes_are_the_domain_then_the_json_without_the_signature() -> None:
    signed = sign(_decision(), RING.signer)
    data = canonical_bytes(signed)
    assert data.startswith(DOMAIN)
    body = msgspec.json.decode(data[len(DOMAIN) :])
    assert body["signature"] is None and body["key_id"] == "new"
    assert body == {**msgspec.json.decode(encode(signed)), "signature": None}


def test_every_key_verifies_and_only_the_first_signs() -> None:
    by_old = sign(_decision(), parse_key_file(OLD.line()).signer)
    assert verify(_on_the_wire(by_old), PUBLIC) is None  # rotation: the old key still verifies


def test_a_ring_of_public_keys_cannot_sign() -> None:
    with pytest.raises(KeyFileError, match="public key: signing needs the private key file"):
        PUBLIC.signer  # noqa: B018
    assert RING.public().keys[0].line() == NEW.public.line()
    assert not hasattr(NEW.public, "sign_bytes") and SECRET_HEX not in NEW.public.line()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (dict(signature=None, key_id=None), "unsigned"),
        (dict(key_id="nobody"), "unknown_key"),
        (dict(scaling_factor=2.9), "bad_signature"),  # altered after signing
        (dict(host_id="another-host"), "bad_signature"),
        (dict(sequence_epoch=1), "bad_signature"),
        (dict(signature="0" * 128), "bad_signature"),
        (dict(signature="not hex"), "bad_signature"),
        (dict(signature="0" * 64), "legacy_hmac"),  # HMAC-shaped: not a signature here
    ],
)
def test_unsigned_unknown_altered_and_forged_decisions_fail(
    change: dict[str, object], code: str
) -> None:
    signed = sign(_decision(), RING.signer)
    bad = _on_the_wire(msgspec.structs.replace(signed, **change))  # type: ignore[arg-type]
    fault = verify(bad, PUBLIC)
    assert fault is not None and fault[0] == code


def test_a_decision_signed_with_a_wrong_key_of_the_same_id_fails() -> None:
    impostor = SigningKey("new", bytes.fromhex("33" * 32))
    fault = verify(_on_the_wire(sign(_decision(), impostor)), PUBLIC)
    assert fault is not None and fault[0] == "bad_signature"


def test_what_a_host_holding_only_the_public_key_can_make_is_refused() -> None:
    """The public key's bytes are all a verifying host has: every way of turning them into a
    signing key fails, whether as an Ed25519 seed or as an HMAC secret."""
    public = PUBLIC.get("new")
    assert isinstance(public, VerifyKey)
    raw = public.public_bytes
    d = _decision()
    seeded = sign(d, SigningKey("new", raw))  # an Ed25519 key derived from the public key
    fault = verify(_on_the_wire(seeded), PUBLIC)
    assert fault is not None and fault[0] == "bad_signature"
    maced = sign(d, HmacKey("new", raw))  # HMAC keyed with the public key's bytes
    fault = verify(_on_the_wire(maced), PUBLIC)
    assert fault is not None and fault[0] == "legacy_hmac"
    # ... and also where HMAC keys are accepted (migration window): "new" is an Ed25519 key
    both = PUBLIC.merged(parse_key_file(f"hmac-old:{OTHER_HEX}", allow_hmac=True))
    fault = verify(_on_the_wire(maced), both)
    assert fault is not None and fault[0] == "legacy_hmac"
    hashed = msgspec.structs.replace(d, key_id="new", signature=(raw + raw).hex())
    fault = verify(_on_the_wire(hashed), PUBLIC)  # the public key itself as a "signature"
    assert fault is not None and fault[0] == "bad_signature"


def test_hmac_keys_only_in_a_migration_window_and_never_under_an_ed25519_id() -> None:
    with pytest.raises(LegacyKeyError, match="HMAC key .* Ed25519 now"):
        parse_key_file(f"legacy:{SECRET_HEX}")
    legacy = parse_key_file(f"legacy:{SECRET_HEX}", allow_hmac=True)
    assert legacy.has_hmac and legacy.signer.key_id == "legacy"
    both = PUBLIC.merged(legacy)
    old_way = sign(_decision(), legacy.signer)
    assert len(old_way.signature or "") == 64
    assert verify(_on_the_wire(old_way), both) is None  # the window: both verify
    assert verify(_on_the_wire(sign(_decision(), NEW)), both) is None
    fault = verify(_on_the_wire(old_way), PUBLIC)  # after the window
    assert fault is not None and fault[0] == "legacy_hmac" and "Ed25519 only" in fault[1]
    with pytest.raises(KeyFileError, match="twice"):
        PUBLIC.merged(parse_key_file(f"new:{SECRET_HEX}", allow_hmac=True))


def test_a_public_key_file_holds_public_keys_only() -> None:
    for text, why in [(NEW.line(), "a private key in a public key file"),
                      (f"h:{SECRET_HEX}", "an HMAC key .* in a public key file")]:  # fmt: skip
        with pytest.raises(KeyFileError, match=why) as info:
            parse_key_file(text, public_only=True)
        assert SECRET_HEX not in str(info.value)


def test_no_secret_in_repr_errors_or_reasons() -> None:
    assert SECRET_HEX not in repr(RING) and SECRET_HEX not in str(RING.signer)
    assert "hidden" in repr(RING.signer)
    legacy = HmacKey("h", bytes.fromhex(SECRET_HEX))
    assert SECRET_HEX not in repr(legacy) and "hidden" in str(legacy)
    for text in (f"k:ed25519-private:{SECRET_HEX[:-2]}zz", f"bad id!:ed25519-private:{SECRET_HEX}",
                 f"k:ed25519-private:{SECRET_HEX[:20]}", f"k:{SECRET_HEX[:-2]}zz"):  # fmt: skip
        with pytest.raises(KeyFileError) as info:
            parse_key_file(text, allow_hmac=True)
        assert SECRET_HEX[:20] not in str(info.value) and "line 1" in str(info.value)
    signed = sign(_decision(), RING.signer)
    altered = _on_the_wire(msgspec.structs.replace(signed, scaling_factor=2.9))
    fault = verify(altered, PUBLIC)
    assert fault is not None
    expected = RING.signer.sign_bytes(canonical_bytes(altered))  # what an oracle would leak
    assert expected not in fault[1] and SECRET_HEX not in fault[1]


def test_key_file_parsing() -> None:
    text = f"# rotated 2026-11\n\na.1:ed25519-private:{SECRET_HEX}\n  b-2 : ed25519-public : {NEW.public.public_bytes.hex()}  \n"
    ring = parse_key_file(text)
    assert [k.key_id for k in ring.keys] == ["a.1", "b-2"] and ring.signer.key_id == "a.1"
    for bad, why in [
        ("", "no keys"),
        (f"{SECRET_HEX}", "expected key_id:ed25519-public:hex"),
        (f"a:ed25519-public:{SECRET_HEX}:x", "expected key_id"),
        (f"a:rsa:{SECRET_HEX}", "unknown key type 'rsa'"),
        (f"a:ed25519-private:{SECRET_HEX}\na:ed25519-public:{OTHER_HEX}", "twice"),
        ("a:ed25519-private:abcd", "is not 32 bytes"),
        ("a:ed25519-public:abcd", "is not 32 bytes"),
    ]:
        with pytest.raises(KeyFileError, match=why):
            parse_key_file(bad)
    with pytest.raises(KeyFileError, match="shorter than 16 bytes"):
        parse_key_file("a:abcd", allow_hmac=True)
    line = SigningKey.generate("gen").line()
    assert parse_key_file(line).signer.key_id == "gen"
    assert KeyRing.ephemeral().signer.key_id == "ephemeral"


# Ed25519 is deterministic (RFC 8032): the same seed and canonical bytes give the same
# signature. A change to the canonical bytes (field order, float form, the domain) shows here.
FIXED_ED25519 = SigningKey("fixed", bytes.fromhex(SECRET_HEX))
FIXED_ED25519_SIGNATURE = (
    "c6dde2712269cc879538f2be20ff23b1520cd0809714be95d6cb2f8b3a471c54"
    "a46eb1b051b15a9124ebedad03242e71fcbf916654f28acc8115a2b5b0e16400"
)


def test_the_signature_of_a_fixed_decision_is_stable() -> None:
    wire = FIXTURE.read_bytes().rstrip(b"\n")
    unsigned = msgspec.structs.replace(decode(wire, ScalingDecision), key_id=None, signature=None)
    signed, data = sign_encoded(unsigned, FIXED_ED25519)
    assert signed.signature == FIXED_ED25519_SIGNATURE
    assert verify(decode(data, ScalingDecision), KeyRing((FIXED_ED25519.public,))) is None


def test_a_whole_number_in_a_float_field_signs_as_the_applier_will_decode_it() -> None:
    built = msgspec.structs.replace(_decision(), scaling_factor=1)  # type: ignore[arg-type]
    assert b'"scaling_factor":1,' in msgspec.json.encode(built)  # decodes as 1.0
    assert verify(_on_the_wire(sign(built, RING.signer)), PUBLIC) is None


# Published before sign_encoded by the encode-decode-encode signer, HMAC key "fixed", secret
# 0x11 * 32. In the migration window the applier must keep accepting it, and signing its content
# again must give the same bytes and signature.
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "signing" / "decision-v1.json"
FIXED = parse_key_file(f"fixed:{SECRET_HEX}", allow_hmac=True)
FIXED_SIGNATURE = "7bd3657f76257bc1ad045a22369c94ac43d0c1f44287ec07d5d34fcd243d9f93"
# The same content with scaling_factor and memory_adjustment built as the int 2.
FIXED_INT_SIGNATURE = "e7359b80001b275bc9f44e70a420bcaba746e9d6704daddd68387d17167c1d1f"


def test_an_hmac_decision_signed_before_sign_encoded_still_verifies_and_signs_the_same() -> None:
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
    assert verify(decode(data, ScalingDecision), PUBLIC) is None


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
