"""The compiled checks (shared/validation.py) accept and refuse exactly what a walk over every
value plus a typed decode of the encoded bytes did, field by field, nested structs included."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from shared.messages import InvalidMessage, decode, encode
from tests.shared.test_messages import EXAMPLES

ODD: list[Any] = [math.nan, math.inf, -math.inf, -1.0, 0.0, 0.5, 1.0, 1.5, 7.0, 1e6, 2**40, -3,
                  "x", "", "f" * 64, None, True, [], [0.1, 0.2, 0.3], (0.1, math.nan, 0.3),
                  "COHERENT", "nope", b"\x00"]  # fmt: skip


def _walk(value: Any, path: str) -> None:
    """The old finiteness check: every value of every message, recursively."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMessage(f"{path} is {value!r}: not a finite number")
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _walk(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]")


def _reference(msg: msgspec.Struct) -> bool:
    """The old rule: walk every value for non-finite floats, then decode the encoded bytes."""
    try:
        _walk(msg, type(msg).__name__)
        msgspec.json.decode(msgspec.json.encode(msg), type=type(msg))
    except (InvalidMessage, msgspec.ValidationError, msgspec.EncodeError, TypeError):
        return False
    return True


def _variants(msg: msgspec.Struct) -> Iterator[msgspec.Struct]:
    """Every field (and every field of a nested struct or of a list's first struct) set to each
    odd value in turn."""
    for name in msg.__struct_fields__:
        for odd in ODD:
            yield msgspec.structs.replace(msg, **{name: odd})
        inner = getattr(msg, name)
        if isinstance(inner, list) and inner and isinstance(inner[0], msgspec.Struct):
            for v in _variants(inner[0]):
                yield msgspec.structs.replace(msg, **{name: [v, *inner[1:]]})
        elif isinstance(inner, msgspec.Struct):
            for v in _variants(inner):
                yield msgspec.structs.replace(msg, **{name: v})


def _text_for_bytes(before: msgspec.Struct, after: msgspec.Struct) -> bool:
    """bytes where text is declared, or text where bytes are: base64 on the wire made the old
    round trip accept some of these; the compiled checks refuse them all."""
    for name in before.__struct_fields__:
        a, b = getattr(before, name), getattr(after, name)
        if a is b:
            continue
        if isinstance(a, msgspec.Struct) and isinstance(b, msgspec.Struct):
            return _text_for_bytes(a, b)
        if isinstance(a, list) and isinstance(b, list) and a and b:
            return _text_for_bytes(a[0], b[0])
        return isinstance(b, bytes) or (isinstance(b, str) and name in ("payload", "key"))
    return False


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda m: type(m).__name__)
def test_compiled_checks_agree_with_the_walk_and_round_trip(example: msgspec.Struct) -> None:
    checked = refused = 0
    for msg in _variants(example):
        want = _reference(msg)
        try:
            encode(msg)
            got = True
        except InvalidMessage:
            got = False
        if got != want and _text_for_bytes(example, msg):
            assert not got  # stricter, on purpose: JSON made bytes and text look alike
            continue
        assert got == want, (type(msg).__name__, msgspec.structs.asdict(msg))
        checked += 1
        refused += not got
    assert checked > 50 and 0 < refused < checked


def test_encode_no_longer_decodes_what_it_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = msgspec.json.decode
    monkeypatch.setattr(msgspec.json, "decode", lambda *a, **k: calls.append(a) or real(*a, **k))
    for msg in EXAMPLES:
        assert decode(encode(msg), type(msg)) == msg
    assert calls == []
