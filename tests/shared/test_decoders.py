"""Every topic's decoder under hypothesis: a valid message with one field replaced, dropped or
added, or its bytes cut or flipped, is either a valid message again or an InvalidMessage with
a reason, never another exception (the consume loop dead-letters on the reason)."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bounds import refusal
from shared.decision import decide
from shared.messages import (
    ApplyResult,
    DeadLetter,
    FeedbackReport,
    InvalidMessage,
    MarketEntropy,
    PriceTick,
    PriorState,
    ProfitPotential,
    decode,
    encode,
)
from shared.topics import TABLE
from tests.support.factories import inputs_for, reference_host, sensors, snapshot


def _examples() -> dict[str, Any]:
    from shared.config import DecisionConstants

    decision, _ = decide(inputs_for(reference_host(), 0.9, 0.1, 0.6), PriorState(), host_id="h1",
                         now=1000.0, c=DecisionConstants())  # fmt: skip
    assert decision is not None
    return {
        "hardware": snapshot(reference_host()),
        "sensors": sensors(),
        "entropy": MarketEntropy(event_time=1000.0, host_id="h1", value=0.4, note="warming"),
        "profit": ProfitPotential(event_time=1000.0, host_id="h1", value=0.7),
        "ticks": PriceTick(event_time=1000.0, host_id="h1", symbol="SPX", price=1234.5),
        "decisions": decision,
        "applied": ApplyResult(event_time=1001.0, host_id="h1", decision_id=decision.decision_id,
                               status="applied", decision_event_time=1000.0),
        "dlq": DeadLetter(event_time=1000.0, host_id="h1", topic="market.entropy", partition=0,
                          offset=7, reason="undecodable", payload=b"\xff{", service="decider"),
        "feedback": FeedbackReport(event_time=1000.0, host_id="h1", interval_seconds=5.0,
                                   latency_p50_ms=2.0, latency_p99_ms=9.5,
                                   latency_objective_ms=10.0, resident_memory_bytes=1 << 30),
    }


EXAMPLES = _examples()
SPECS = {s.role: s for s in TABLE}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)
odd_literals = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "\"\\ud800\"",
                                "\"\\u0000\"", "18446744073709551616", "[]", "{}", "null"])  # fmt: skip


def _decode_or_reason(data: bytes, kind: type[msgspec.Struct]) -> None:
    """What the consume loop does: bounds first, then the decoder; only reasons may leave."""
    if refusal(data):
        return
    try:
        msg = decode(data, kind)
    except InvalidMessage as exc:
        assert str(exc)
        return
    # What decoded is a valid message: it encodes again and reads back equal.
    assert decode(encode(msg), kind) == msg


def test_every_example_is_valid_and_round_trips() -> None:
    assert set(EXAMPLES) == set(SPECS)
    for role, msg in EXAMPLES.items():
        kind = SPECS[role].message
        assert isinstance(msg, kind)
        assert decode(encode(msg), kind) == msg


@pytest.mark.parametrize("role", sorted(SPECS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_field_replaced_dropped_or_added_is_a_message_or_a_reason(role: str, data: Any) -> None:
    kind = SPECS[role].message
    doc = json.loads(encode(EXAMPLES[role]))
    field = data.draw(st.sampled_from(sorted(doc)))
    how = data.draw(st.sampled_from(["replace", "drop", "add", "literal"]))
    if how == "replace":
        doc[field] = data.draw(json_values)
        raw = json.dumps(doc).encode()
    elif how == "drop":
        del doc[field]
        raw = json.dumps(doc).encode()
    elif how == "add":
        doc[data.draw(st.text(min_size=1, max_size=12))] = data.draw(json_values)
        raw = json.dumps(doc).encode()
    else:  # a literal JSON cannot carry through json.dumps: spliced into the text
        doc[field] = "@@"
        raw = json.dumps(doc).replace('"@@"', data.draw(odd_literals)).encode()
    _decode_or_reason(raw, kind)


@pytest.mark.parametrize("role", sorted(SPECS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_cut_or_flipped_bytes_are_a_message_or_a_reason(role: str, data: Any) -> None:
    kind = SPECS[role].message
    raw = bytearray(encode(EXAMPLES[role]))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _decode_or_reason(bytes(raw), kind)


def test_non_finite_numbers_are_refused_on_every_topic() -> None:
    for role, msg in EXAMPLES.items():
        kind = SPECS[role].message
        doc = json.loads(encode(msg))
        for field, value in doc.items():
            if isinstance(value, float) and math.isfinite(value):
                for literal in ("NaN", "Infinity", "1e999"):
                    spliced = dict(doc, **{field: "@@"})
                    raw = json.dumps(spliced).replace('"@@"', literal).encode()
                    with pytest.raises(InvalidMessage):
                        decode(raw, kind)
