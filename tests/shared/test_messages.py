from __future__ import annotations

import json
import math

import msgspec
import pytest

from shared.messages import (
    SCHEMA_VERSION,
    ApplyResult,
    DeadLetter,
    HardwareSnapshot,
    InvalidMessage,
    MarketEntropy,
    PriceTick,
    PriorState,
    ProfitPotential,
    ScalingDecision,
    SensorReading,
    decode,
    encode,
    validate,
)
from tests.support.factories import inputs_for, reference_host, sensors, snapshot


def _decision() -> ScalingDecision:
    return ScalingDecision(
        event_time=1000.0,
        host_id="h1",
        decision_id="h1-1",
        sequence=1,
        scaling_factor=1.2,
        memory_adjustment=1.2,
        memory_budget_bytes=1 << 30,
        precision_bits=16,
        precision_tier="block16",
        batch_size=64,
        workers=2,
        confidence=0.9,
        quantum_state="COHERENT",
        coherence_score=0.3,
        entropy_value=0.7,
        quantum_phase=1.0,
        triggers=["market_entropy"],
        reasons=["because"],
        inputs=inputs_for(reference_host(), 0.7, 0.2, 0.5),
        prior=PriorState(),
    )


EXAMPLES = [
    snapshot(reference_host()),
    sensors(),
    MarketEntropy(event_time=1.0, host_id="h", value=0.4),
    ProfitPotential(event_time=1.0, host_id="h", value=0.9),
    PriceTick(event_time=1.0, host_id="h", symbol="SPX", price=4321.5, volume=10.0),
    _decision(),
    ApplyResult(
        event_time=2.0, host_id="h", decision_id="d", decision_event_time=1.0, status="applied"
    ),
    DeadLetter(
        event_time=1.0,
        host_id="h",
        topic="t",
        partition=0,
        offset=5,
        reason="bad",
        payload=b"\x00\xffnot json",
    ),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_is_exact_and_json(msg: msgspec.Struct) -> None:
    data = encode(msg)
    assert json.loads(data)["schema_version"] == SCHEMA_VERSION  # plain JSON, any client reads it
    assert decode(data, type(msg)) == msg


def test_unknown_fields_are_ignored() -> None:
    data = json.dumps({"event_time": 1.0, "host_id": "h", "value": 0.3, "added_in_v2": [1, 2]})
    assert decode(data.encode(), MarketEntropy).value == 0.3


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"event_time": 1.0, "host_id": "h", "value": "0.3"}, "Expected `float`"),
        ({"event_time": 1.0, "host_id": "h"}, "missing required field `value`"),
        ({"event_time": 1.0, "host_id": "h", "value": 1.5}, "<= 1.0"),
        ({"event_time": 1.0, "host_id": "h", "value": -0.1}, ">= 0.0"),
        ({"event_time": -5.0, "host_id": "h", "value": 0.1}, ">= 0.0"),
        ({"event_time": 1.0, "host_id": "", "value": 0.1}, "length >= 1"),
        ({"event_time": 1.0, "host_id": "h", "value": None}, "Expected `float`, got `null`"),
        ({"event_time": 1.0, "host_id": "h", "value": 0.1, "schema_version": 99}, "newer"),
    ],
)
def test_decode_rejects_with_reason(payload: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidMessage, match="MarketEntropy") as info:
        decode(json.dumps(payload).encode(), MarketEntropy)
    assert needle in str(info.value)


def test_decode_rejects_infinity_and_garbage() -> None:
    with pytest.raises(InvalidMessage, match="out of range|not a finite number"):
        decode(b'{"event_time":1,"host_id":"h","symbol":"X","price":1e999}', PriceTick)
    with pytest.raises(InvalidMessage, match="malformed|JSON"):
        decode(b"{not json", MarketEntropy)


def test_decode_rejects_bad_fingerprint() -> None:
    data = json.loads(encode(EXAMPLES[0]))
    data["fingerprint"] = "abc"
    with pytest.raises(InvalidMessage, match="fingerprint"):
        decode(json.dumps(data).encode(), HardwareSnapshot)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_encode_validates_before_publishing(bad: float) -> None:
    # msgspec would write NaN as null and never check Meta constraints on encode.
    with pytest.raises(InvalidMessage, match="not a finite number"):
        encode(MarketEntropy(event_time=1.0, host_id="h", value=bad))
    with pytest.raises(InvalidMessage, match="not a finite number"):
        encode(sensors(load_average=(0.1, bad, 0.3)))


def test_encode_checks_ranges_built_in_code() -> None:
    with pytest.raises(InvalidMessage, match="<= 1.0"):
        encode(ProfitPotential(event_time=1.0, host_id="h", value=2.0))
    with pytest.raises(InvalidMessage, match="gt|> 0"):
        validate(PriceTick(event_time=1.0, host_id="h", symbol="X", price=0.0))


def test_sensor_reading_requires_thermal_state() -> None:
    data = json.loads(encode(sensors()))
    del data["thermal_state"]
    with pytest.raises(InvalidMessage, match="thermal_state"):
        decode(json.dumps(data).encode(), SensorReading)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_optional_and_nested_floats_are_checked_not_nulled(bad: float) -> None:
    # An optional float written as null would read back as "absent": refuse instead.
    prior = PriorState(decided_at=bad)
    with pytest.raises(InvalidMessage, match=r"PriorState\.decided_at is"):
        encode(prior)
    with pytest.raises(InvalidMessage, match=r"recent_factors\[1\]\[0\]"):
        encode(PriorState(recent_factors=[(1.0, 1.0), (bad, 1.0)]))


@pytest.mark.parametrize("field", ["decided_at", "smoothed_at"])
def test_decode_rejects_overflow_in_optional_float(field: str) -> None:
    with pytest.raises(InvalidMessage, match="out of range"):
        decode(f'{{"{field}": 1e999}}'.encode(), PriorState)
