"""Signed decisions: Ed25519 over a decision's canonical bytes, with a key id.

Only the decider holds the private key; appliers and engines verify with its public key, so a
host that verifies cannot sign (HMAC, the previous release's scheme, is symmetric: every
verifier could sign). HMAC keys are still understood during a migration window
(:func:`parse_key_file` with ``allow_hmac``), never by default.

Canonical bytes: ``b"qas.decision.v1\\n"`` followed by msgspec's compact JSON encoding of the
``ScalingDecision`` with ``signature`` set to null (fields in declaration order, no whitespace,
floats in shortest round-trip form). Everything else is covered, ``key_id`` and
``sequence_epoch`` included. The applier rebuilds these bytes from the decision it decoded, so a
change to any field breaks the signature. Unknown JSON fields are dropped on decode and are not
covered; nothing reads them. The prefix keeps a decision signature from ever being valid for
another message type. A signature is 128 lowercase hex digits (64 bytes); an HMAC one is 64.

Key files, one key per line (blank lines and ``#`` comments allowed):

- ``key_id:ed25519-private:<64 hex>``: a private key (its 32-byte seed), in the decider's file;
- ``key_id:ed25519-public:<64 hex>``: a public key, in the file verifiers are given;
- ``key_id:<hex>``: an HMAC-SHA256 secret (the previous release's format).

The first key of a ring signs, every key verifies, so a key rotates by adding the new public
key to every verifier's file, then switching the decider to the new private key, then removing
the old public line. Secrets never appear in a repr, a log, an error or a message: errors name
the line number and the key id only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final, Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.messages import ScalingDecision, encode_exact

DOMAIN: Final = b"qas.decision.v1\n"
SEED_BYTES: Final = 32  # an Ed25519 private key's seed, and a public key's length
SIGNATURE_BYTES: Final = 64
MIN_HMAC_KEY_BYTES: Final = 16
PRIVATE: Final = "ed25519-private"
PUBLIC: Final = "ed25519-public"
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ED25519_SIGNATURE = re.compile(r"^[0-9a-f]{128}$")
_HMAC_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")

# Bounded reason codes: the metric label and the start of the apply result's reason.
# legacy_hmac: an HMAC signature where this verifier accepts Ed25519 only.
SignatureFault = Literal["unsigned", "unknown_key", "bad_signature", "legacy_hmac"]


class KeyFileError(ValueError):
    """A key file that cannot be used; the message never contains key material."""


class LegacyKeyError(KeyFileError):
    """An HMAC key where only Ed25519 keys are accepted (outside a migration window)."""


def _check_id(key_id: str) -> None:
    if not KEY_ID.match(key_id):
        raise KeyFileError("key id must be 1-64 characters of A-Z a-z 0-9 . _ -")


class VerifyKey:
    """An Ed25519 public key: verifies, cannot sign."""

    __slots__ = ("_key", "key_id", "public_bytes")
    can_sign: Final = False

    def __init__(self, key_id: str, public: bytes) -> None:
        _check_id(key_id)
        if len(public) != SEED_BYTES:
            raise KeyFileError(f"public key {key_id!r} is not {SEED_BYTES} bytes")
        self.key_id = key_id
        self.public_bytes = public
        self._key = Ed25519PublicKey.from_public_bytes(public)

    def __repr__(self) -> str:
        return f"VerifyKey(key_id={self.key_id!r})"

    def verifies(self, data: bytes, signature: str) -> bool:
        if not _ED25519_SIGNATURE.match(signature):
            return False
        try:
            self._key.verify(bytes.fromhex(signature), data)
        except InvalidSignature:
            return False
        return True

    def line(self) -> str:
        """The public key file line for this key."""
        return f"{self.key_id}:{PUBLIC}:{self.public_bytes.hex()}"


class SigningKey:
    """An Ed25519 private key (from its 32-byte seed). The seed stays out of repr and str."""

    __slots__ = ("_key", "_seed", "key_id", "public")
    can_sign: Final = True

    def __init__(self, key_id: str, seed: bytes) -> None:
        _check_id(key_id)
        if len(seed) != SEED_BYTES:
            raise KeyFileError(f"private key {key_id!r} is not {SEED_BYTES} bytes")
        self.key_id = key_id
        self._seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public = VerifyKey(key_id, raw)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, secret=<hidden>)"

    __str__ = __repr__

    def sign_bytes(self, data: bytes) -> str:
        return self._key.sign(data).hex()

    def verifies(self, data: bytes, signature: str) -> bool:
        return self.public.verifies(data, signature)

    def line(self) -> str:
        """The private key file line for this key (only `qas keygen` writes it)."""
        return f"{self.key_id}:{PRIVATE}:{self._seed.hex()}"

    @classmethod
    def generate(cls, key_id: str | None = None) -> SigningKey:
        return cls(key_id or f"k{secrets.token_hex(4)}", secrets.token_bytes(SEED_BYTES))


class HmacKey:
    """An HMAC-SHA256 secret: the previous release's symmetric key, for a migration window."""

    __slots__ = ("_hmac", "key_id")
    can_sign: Final = True

    def __init__(self, key_id: str, secret: bytes) -> None:
        _check_id(key_id)
        if len(secret) < MIN_HMAC_KEY_BYTES:
            raise KeyFileError(f"key {key_id!r} is shorter than {MIN_HMAC_KEY_BYTES} bytes")
        self.key_id = key_id
        self._hmac = hmac.new(secret, digestmod=hashlib.sha256)  # keyed once, copied per MAC

    def __repr__(self) -> str:
        return f"HmacKey(key_id={self.key_id!r}, secret=<hidden>)"

    __str__ = __repr__

    def sign_bytes(self, data: bytes) -> str:
        h = self._hmac.copy()
        h.update(data)
        return h.hexdigest()

    def verifies(self, data: bytes, signature: str) -> bool:
        return bool(_HMAC_SIGNATURE.match(signature)) and hmac.compare_digest(
            self.sign_bytes(data), signature
        )


Key = SigningKey | VerifyKey | HmacKey
Signer = SigningKey | HmacKey


@dataclass(frozen=True)
class KeyRing:
    """The keys one process holds: ``keys[0]`` signs (when it can), all verify."""

    keys: tuple[Key, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyFileError("no keys")
        ids = [k.key_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise KeyFileError("a key id appears twice")

    @property
    def signer(self) -> Signer:
        first = self.keys[0]
        if isinstance(first, VerifyKey):
            raise KeyFileError(f"key {first.key_id!r} is a public key: signing needs the "
                               "private key file")  # fmt: skip
        return first

    @property
    def has_private(self) -> bool:
        """Whether this ring could sign (a host that only verifies must hold no such key)."""
        return any(k.can_sign for k in self.keys)

    @property
    def has_hmac(self) -> bool:
        return any(isinstance(k, HmacKey) for k in self.keys)

    def get(self, key_id: str) -> Key | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def public(self) -> KeyRing:
        """The same ring with each Ed25519 private key replaced by its public key (HMAC keys
        have no public form and stay)."""
        return KeyRing(tuple(k.public if isinstance(k, SigningKey) else k for k in self.keys))

    def merged(self, other: KeyRing) -> KeyRing:
        """Both rings' keys, this one's first; a key id in both is an error."""
        return KeyRing(self.keys + other.keys)

    @classmethod
    def ephemeral(cls) -> KeyRing:
        """A fresh in-memory key, for processes that both sign and verify (`qas run`)."""
        return cls((SigningKey.generate("ephemeral"),))


def _hex(number: int, text: str) -> bytes:
    try:
        return bytes.fromhex(text.strip())
    except ValueError:
        raise KeyFileError(f"line {number}: the key is not hexadecimal") from None


def parse_key_file(text: str, *, allow_hmac: bool = False, public_only: bool = False) -> KeyRing:
    """The key ring in a key file's text.

    ``public_only``: the file a verifier is given; a private or HMAC key in it is refused (a
    host that only verifies must hold nothing that signs). ``allow_hmac``: accept HMAC lines
    (migration window); otherwise they raise :class:`LegacyKeyError`.
    """
    keys: list[Key] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(":")]
        if len(parts) not in (2, 3):
            raise KeyFileError(f"line {number}: expected key_id:{PUBLIC}:hex "
                               f"or key_id:{PRIVATE}:hex")  # fmt: skip
        key_id, kind, hexpart = (parts[0], "hmac", parts[1]) if len(parts) == 2 else parts
        if kind not in (PRIVATE, PUBLIC, "hmac"):
            raise KeyFileError(f"line {number}: unknown key type {kind[:32]!r}")
        if public_only and kind != PUBLIC:
            what = "a private key" if kind == PRIVATE else "an HMAC key (a shared secret)"
            raise KeyFileError(f"line {number}: {what} in a public key file; a verifier takes "
                               "only public keys (the .pub file `qas keygen` writes)")  # fmt: skip
        if kind == "hmac" and not allow_hmac:
            raise LegacyKeyError(f"line {number}: an HMAC key (the previous release's "
                                 "key_id:hex format); decisions are signed with Ed25519 now: "
                                 "`qas keygen` writes a key pair (docs/upgrading.md)")  # fmt: skip
        data = _hex(number, hexpart)
        try:
            if kind == PRIVATE:
                keys.append(SigningKey(key_id, data))
            elif kind == PUBLIC:
                keys.append(VerifyKey(key_id, data))
            else:
                keys.append(HmacKey(key_id, data))
        except (KeyFileError, ValueError) as exc:
            why = exc if isinstance(exc, KeyFileError) else "not a valid Ed25519 key"
            raise KeyFileError(f"line {number}: {why}") from None
    if not keys:
        raise KeyFileError("no keys in the key file")
    return KeyRing(tuple(keys))


_UNSIGNED_TAIL: Final = b'"signature":null}'


def canonical_bytes(d: ScalingDecision) -> bytes:
    return DOMAIN + msgspec.json.encode(msgspec.structs.replace(d, signature=None))


def sign_encoded(d: ScalingDecision, key: Signer) -> tuple[ScalingDecision, bytes]:
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
    signature = key.sign_bytes(DOMAIN + body)
    wire = b"".join((body[: -len(b"null}")], b'"', signature.encode(), b'"}'))
    return msgspec.structs.replace(unsigned, signature=signature), wire


def sign(d: ScalingDecision, key: Signer) -> ScalingDecision:
    """The decision with ``key_id`` and ``signature`` set (:func:`sign_encoded` without its
    bytes)."""
    return sign_encoded(d, key)[0]


def verify(d: ScalingDecision, ring: KeyRing) -> tuple[SignatureFault, str] | None:
    """None when ``d`` carries a valid signature by a key of ``ring``, else (code, reason).

    An HMAC-shaped signature is judged ``legacy_hmac`` unless the ring holds an HMAC key of that
    id: a verifier never treats a public key's bytes as a MAC secret. The reason never contains
    an expected signature.
    """
    if d.signature is None or d.key_id is None:
        return "unsigned", "unsigned decision"
    key = ring.get(d.key_id)
    if not isinstance(key, HmacKey) and _HMAC_SIGNATURE.match(d.signature):
        return "legacy_hmac", (f"HMAC-signed (key id {d.key_id[:64]!r}), the previous "
                               "release's scheme: this verifier accepts Ed25519 only")  # fmt: skip
    if key is None:
        return "unknown_key", f"signed with unknown key id {d.key_id[:64]!r}"
    if not key.verifies(canonical_bytes(d), d.signature):
        return "bad_signature", f"signature does not match (key id {d.key_id!r})"
    return None
