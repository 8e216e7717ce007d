from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bounds import MAX_DEPTH, dead_letter_payload, nesting_depth, refusal
from shared.messages import InvalidMessage, MarketEntropy, decode


def test_depth_counts_nesting_not_brackets_inside_strings() -> None:
    assert nesting_depth(b'{"a":[1,[2]],"b":{}}', 10) == 3
    assert nesting_depth(b'{"s":"[[[[[[[[[[[[\\"[[[["}', 3) == 1
    assert nesting_depth(b"[" * 5000 + b"]" * 5000, MAX_DEPTH) == MAX_DEPTH + 1


def test_refusal_of_deep_and_big_records_and_none_for_valid() -> None:
    deep = b'{"x":' + b"[" * 5000 + b"]" * 5000 + b',"event_time":1,"host_id":"h","value":0.5}'
    assert "nested deeper" in refusal(deep)
    assert "larger than" in refusal(b'"' + b"a" * 2_000_000 + b'"')
    assert refusal(b'{"event_time":1,"host_id":"h","value":0.5}') == ""


def test_dead_letter_payload_keeps_head_size_and_hash() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB
    head, size, sha = dead_letter_payload(big, 1000)
    assert head == big[:1000] and size == len(big) and sha == hashlib.sha256(big).hexdigest()
    assert dead_letter_payload(b"small", 1000)[0] == b"small"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_either_decode_or_raise_a_reason_after_bounds(data: bytes) -> None:
    # What the consume loop does: bounds first, then the decoder; both give a reason.
    if refusal(data):
        return
    try:
        decode(data, MarketEntropy)
    except (InvalidMessage, UnicodeDecodeError):
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_is_refused_or_decoded_or_a_reason(value: object) -> None:
    data = json.dumps({"event_time": 1, "host_id": "h", "value": 0.5, "x": value}).encode()
    if refusal(data):
        return
    try:
        assert decode(data, MarketEntropy).value == 0.5
    except InvalidMessage:
        pass
