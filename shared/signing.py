"""Signed decisions: HMAC-SHA256 over a decision's canonical bytes, with a key id.

Canonical bytes: ``b"qas.decision.v1\\n"`` followed by msgspec's compact JSON encoding of the
``ScalingDecision`` with ``signature`` set to null (fields in declaration order, no whitespace,
floats in shortest round-trip form). Everything else is covered, ``key_id`` and
``sequence_epoch`` included. The applier rebuilds these bytes from the decision it decoded, so a
change to any field breaks the signature. Unknown JSON fields are dropped on decode and are not
covered; nothing reads them. The prefix keeps a decision MAC from ever being valid for another
message type.

Key file: one ``key_id:hex`` per line (blank lines and ``#`` comments allowed). The first key
signs, every key verifies, so a key rotates by adding the new one on top everywhere, then
removing the old one once no decider signs with it. Secrets never appear in a repr, a log, an
error or a message: errors name the line number and the key id only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from shared.messages import ScalingDecision, encode_exact

DOMAIN: Final = b"qas.decision.v1\n"
KEY_BYTES: Final = 32  # what `qas keygen` writes
MIN_KEY_BYTES: Final = 16
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")

# Bounded reason codes: the metric label and the start of the apply result's reason.
SignatureFault = Literal["unsigned", "unknown_key", "bad_signature"]


class KeyFileError(ValueError):
    """A key file that cannot be used; the message never contains key material."""


class SigningKey:
    """One key: its id and secret. The secret stays out of repr, str and comparisons."""

    __slots__ = ("_hmac", "_secret", "key_id")

    def __init__(self, key_id: str, secret: bytes) -> None:
        if not KEY_ID.match(key_id):
            raise KeyFileError("key id must be 1-64 characters of A-Z a-z 0-9 . _ -")
        if len(secret) < MIN_KEY_BYTES:
            raise KeyFileError(f"key {key_id!r} is shorter than {MIN_KEY_BYTES} bytes")
        self.key_id = key_id
        self._secret = secret
        self._hmac = hmac.new(secret, digestmod=hashlib.sha256)  # keyed once, copied per MAC

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, secret=<hidden>)"

    __str__ = __repr__

    def mac(self, data: bytes) -> str:
        h = self._hmac.copy()
        h.update(data)
        return h.hexdigest()

    def line(self) -> str:
        """The key file line for this key (only `qas keygen` writes it)."""
        return f"{self.key_id}:{self._secret.hex()}"

    @classmethod
    def generate(cls, key_id: str | None = None) -> SigningKey:
        return cls(key_id or f"k{secrets.token_hex(4)}", secrets.token_bytes(KEY_BYTES))


@dataclass(frozen=True)
class KeyRing:
    """The keys one process holds: ``keys[0]`` signs, all verify."""

    keys: tuple[SigningKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyFileError("no keys")
        ids = [k.key_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise KeyFileError("a key id appears twice")

    @property
    def signer(self) -> SigningKey:
        return self.keys[0]

    def get(self, key_id: str) -> SigningKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    @classmethod
    def ephemeral(cls) -> KeyRing:
        """A fresh in-memory key, for processes that both sign and verify (`qas run`)."""
        return cls((SigningKey.generate("ephemeral"),))


def parse_key_file(text: str) -> KeyRing:
    keys: list[SigningKey] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, hexpart = line.partition(":")
        if not sep:
            raise KeyFileError(f"line {number}: expected key_id:hex")
        try:
            secret = bytes.fromhex(hexpart.strip())
        except ValueError:
            raise KeyFileError(f"line {number}: the key is not hexadecimal") from None
        try:
            keys.append(SigningKey(key_id.strip(), secret))
        except KeyFileError as exc:
            raise KeyFileError(f"line {number}: {exc}") from None
    if not keys:
        raise KeyFileError("no keys in the key file")
    return KeyRing(tuple(keys))


_UNSIGNED_TAIL: Final = b'"signature":null}'


def canonical_bytes(d: ScalingDecision) -> bytes:
    return DOMAIN + msgspec.json.encode(msgspec.structs.replace(d, signature=None))


def sign_encoded(d: ScalingDecision, key: SigningKey) -> tuple[ScalingDecision, bytes]:
    """(the decision with ``key_id`` and ``signature`` set, its wire bytes), produced once.

    The decision is validated and encoded once, unsigned, in the form the applier will decode
    it to (:func:`shared.messages.encode_exact`: an int in a float field encodes as ``1`` but
    decodes as ``1.0``), so both sides compute the same canonical bytes. The wire bytes are those
    canonical bytes with the signature spliced in where they say ``null``: ``signature`` is the
    last field and a hex string needs no escaping, so they equal ``encode(signed)`` byte for byte.
    """
    unsigned, body = encode_exact(msgspec.structs.replace(d, key_id=key.key_id, signature=None))
    if not body.endswith(_UNSIGNED_TAIL):  # a field declared after `signature`
        raise AssertionError("ScalingDecision.signature must be its last field")
    signature = key.mac(DOMAIN + body)
    wire = b"".join((body[: -len(b"null}")], b'"', signature.encode(), b'"}'))
    return msgspec.structs.replace(unsigned, signature=signature), wire


def sign(d: ScalingDecision, key: SigningKey) -> ScalingDecision:
    """The decision with ``key_id`` and ``signature`` set (:func:`sign_encoded` without its
    bytes)."""
    return sign_encoded(d, key)[0]


def verify(d: ScalingDecision, ring: KeyRing) -> tuple[SignatureFault, str] | None:
    """None when ``d`` carries a valid signature by a key of ``ring``, else (code, reason).

    The reason never contains the expected MAC: that would sign the attacker's content.
    """
    if d.signature is None or d.key_id is None:
        return "unsigned", "unsigned decision"
    key = ring.get(d.key_id)
    if key is None:
        return "unknown_key", f"signed with unknown key id {d.key_id[:64]!r}"
    if not _SIGNATURE.match(d.signature) or not hmac.compare_digest(
        key.mac(canonical_bytes(d)), d.signature
    ):
        return "bad_signature", f"signature does not match (key id {d.key_id!r})"
    return None
