"""The applier's state file bytes (shared/watermarks.py): pure."""

from __future__ import annotations

import pytest

from shared.freshness import Watermark
from shared.watermarks import CorruptState, decode_state, encode_state, newer


def test_watermarks_round_trip_sorted_and_versioned() -> None:
    marks = {"b": Watermark(7, 3), "a": Watermark(1_765_000_000_000, 12)}
    data = encode_state(marks)
    assert data.startswith(b'{"version":1,"hosts":{"a":') and data.endswith(b"\n")
    assert decode_state(data) == marks
    assert decode_state(encode_state({})) == {}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a watermark state file"),
        (b'{"version":1,"hosts":{"a":{"epoch":1,"seq', "not a watermark state file"),  # torn
        (b'{"version":1,"hosts":{"a":{"epoch":-1,"sequence":2}}}', "not a watermark state file"),
        (b'{"version":1,"hosts":{"a":{"epoch":"1","sequence":2}}}', "not a watermark state file"),
        (b'{"version":2,"hosts":{}}', "state version 2, this applier knows 1"),
        (b"\xff\xfe", "not a watermark state file"),
        (b"[]", "not a watermark state file"),
    ],
)
def test_anything_else_is_corrupt_not_a_guess(data: bytes, why: str) -> None:
    with pytest.raises(CorruptState, match=why):
        decode_state(data)


def test_newer_orders_by_epoch_then_sequence() -> None:
    assert newer(None, Watermark(1, 1)) == Watermark(1, 1)
    assert newer(Watermark(2, 1), Watermark(1, 99)) == Watermark(2, 1)
    assert newer(Watermark(2, 1), Watermark(2, 5)) == Watermark(2, 5)
