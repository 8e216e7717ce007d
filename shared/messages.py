"""Wire messages: one msgspec Struct per topic, JSON on the wire.

Every message carries a schema version, an event time (Unix seconds, UTC) and a ``host_id``.
Unknown fields are ignored on decode (forward compatibility); wrong types, missing fields,
out-of-range values and non-finite floats are rejected. msgspec checks ``Meta`` constraints
only on decode and writes NaN as ``null``, so :func:`encode` validates before it serialises.
"""

from __future__ import annotations

import math
from typing import Annotated, Final, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from shared.tiers import Bits
from shared.validation import (
    DECODED,
    EXACT,
    FULL,
    INT_IN_FLOAT,
    Check,
    Mode,
    Unsupported,
    checker,
)

SCHEMA_VERSION: Final = 1

# Every float field is bounded, so msgspec's decoder rejects infinity (JSON has no NaN) in C:
# finiteness is checked by what the types declare, not by walking values.
FLOAT_MAX: Final = 1.7976931348623157e308
Finite = Annotated[float, Meta(ge=-FLOAT_MAX, le=FLOAT_MAX)]
Unit = Annotated[float, Meta(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Meta(ge=0.0, le=FLOAT_MAX)]
Count = Annotated[int, Meta(ge=0)]
Bytes = Annotated[int, Meta(ge=0)]
Phase = Annotated[float, Meta(ge=0.0, lt=2 * math.pi)]
HostId = Annotated[str, Meta(min_length=1, max_length=253)]
Fingerprint = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
Celsius = Annotated[float, Meta(ge=-273.15, le=1000.0)]

GpuTier = Literal["integrated", "low_end", "mid_range", "high_end", "ultra", "extreme"]
QuantumState = Literal["SUPERPOSITION", "COLLAPSED", "COHERENT", "DECOHERENT"]
Trigger = Literal["hardware_observer", "market_entropy", "thermal_mirror", "profit_harmonic"]
ApplyStatus = Literal["applied", "skipped", "failed", "rejected"]  # rejected: failed verification


class Envelope(Struct, kw_only=True, frozen=True):
    """Fields every message shares."""

    schema_version: Annotated[int, Meta(ge=1)] = SCHEMA_VERSION
    event_time: NonNeg
    host_id: HostId


class Missing(Struct, frozen=True):
    """A part that could not be read, and why (the observer publishes what it has)."""

    part: Annotated[str, Meta(max_length=128)]
    reason: Annotated[str, Meta(max_length=1024)]


# --- hardware (qas.hardware) -------------------------------------------------------------


class GpuInfo(Struct, frozen=True, kw_only=True):
    index: Count
    name: str
    memory_total_bytes: Bytes
    sm_count: Count | None = None
    cuda_cores: Count | None = None
    cuda_cores_source: Literal["nvml", "sm_table", "unknown"] = "unknown"
    compute_capability: str | None = None
    memory_bus_width_bits: Count | None = None
    max_memory_clock_mhz: NonNeg | None = None
    memory_bandwidth_gbps: NonNeg | None = None
    boost_clock_mhz: NonNeg | None = None
    tier: GpuTier = "low_end"
    # SHA-256 of the board UUID: stable identity without the UUID leaving the host.
    uuid_sha256: Fingerprint | None = None


class Inventory(Struct, frozen=True, kw_only=True):
    """Stable facts only: what the fingerprint is computed from."""

    cpu_model: str
    logical_cores: Annotated[int, Meta(ge=1)]
    physical_cores: Count | None = None
    cpu_max_freq_mhz: NonNeg | None = None
    cpu_quota_cores: NonNeg | None = None  # cgroup cpu.max / cfs quota, None = unlimited
    memory_total_bytes: Annotated[int, Meta(ge=1)]
    memory_limit_bytes: Bytes | None = None  # cgroup memory.max / limit_in_bytes
    gpus: list[GpuInfo] = []
    board_model: str | None = None  # e.g. /proc/device-tree/model on a Raspberry Pi
    arch: str = ""

    @property
    def effective_memory_bytes(self) -> int:
        if self.memory_limit_bytes is None:
            return self.memory_total_bytes
        return min(self.memory_total_bytes, self.memory_limit_bytes)

    @property
    def effective_cores(self) -> float:
        if self.cpu_quota_cores is None:
            return float(self.logical_cores)
        return min(float(self.logical_cores), self.cpu_quota_cores)


class Scores(Struct, frozen=True, kw_only=True):
    """The seed's capability scores; see shared/scores.py for the formulas."""

    gpu_score: Unit
    ram_score: Unit
    cpu_score: Unit
    entanglement_strength: Unit
    positive_channel: NonNeg  # raw seed value: GPU memory GB * CUDA cores / 10000
    negative_channel: NonNeg  # raw: RAM GB / 32
    zero_channel: NonNeg  # raw: CPU cores / 16
    positive_norm: Unit
    negative_norm: Unit
    zero_norm: Unit
    harmonic_coherence: Unit
    coherence_score: Unit
    entropy_value: Unit


class HardwareSnapshot(Envelope, frozen=True, kw_only=True):
    fingerprint: Fingerprint
    inventory: Inventory
    scores: Scores
    missing: list[Missing] = []
    changed: bool = False  # True: the fingerprint differs from the previous one ("collapse")
    previous_fingerprint: Fingerprint | None = None


# --- sensors (qas.sensors) ----------------------------------------------------------------


MAX_SENSOR_NAME = 128
MAX_TEMPERATURES = 512  # a many-core server reports one per core; far above any real host
MAX_GPUS = 64
MAX_MISSING = 64


class Temperature(Struct, frozen=True, kw_only=True):
    # e.g. "coretemp/Package id 0", "thermal_zone0/cpu-thermal", "gpu0"
    sensor: Annotated[str, Meta(min_length=1, max_length=MAX_SENSOR_NAME)]
    celsius: Celsius
    throttle_celsius: Celsius | None = None  # the point this component throttles at


class GpuSensors(Struct, frozen=True, kw_only=True):
    index: Count
    temperature_celsius: Celsius | None = None
    utilization_ratio: Unit | None = None
    memory_used_bytes: Bytes | None = None
    memory_free_bytes: Bytes | None = None
    power_watts: NonNeg | None = None
    power_limit_watts: NonNeg | None = None
    throttle_reasons: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=32)] = []
    thermal_throttling: bool = False


class PiThrottle(Struct, frozen=True, kw_only=True):
    """Raspberry Pi firmware flags (get_throttled bits 0-3 now, 16-19 since boot)."""

    raw: Count
    under_voltage: bool
    frequency_capped: bool
    throttled: bool
    soft_temp_limit: bool
    under_voltage_since_boot: bool
    frequency_capped_since_boot: bool
    throttled_since_boot: bool
    soft_temp_limit_since_boot: bool


class SensorReading(Envelope, frozen=True, kw_only=True):
    fingerprint: Fingerprint | None = None
    cpu_utilization_ratio: Unit
    cpu_freq_mhz: NonNeg | None = None
    load_average: tuple[NonNeg, NonNeg, NonNeg] | None = None
    memory_available_bytes: Bytes
    memory_pressure_some_avg10: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    swap_used_bytes: Bytes = 0
    # Bounded so one reading cannot carry thousands of made-up sensors (or series on /metrics).
    temperatures: Annotated[list[Temperature], Meta(max_length=MAX_TEMPERATURES)] = []
    gpus: Annotated[list[GpuSensors], Meta(max_length=MAX_GPUS)] = []
    pi_throttle: PiThrottle | None = None
    thermal_state: Unit
    thermal_throttling: bool = False
    missing: Annotated[list[Missing], Meta(max_length=MAX_MISSING)] = []


# --- market inputs (market.*) -------------------------------------------------------------


class MarketEntropy(Envelope, frozen=True, kw_only=True):
    value: Unit
    source: str = "engine"
    # below 1 while an estimate derived from ticks is still warming up; ``note`` says why
    confidence: Unit = 1.0
    note: Annotated[str, Meta(max_length=512)] = ""


class ProfitPotential(Envelope, frozen=True, kw_only=True):
    value: Unit
    source: str = "engine"


class PriceTick(Envelope, frozen=True, kw_only=True):
    symbol: Annotated[str, Meta(min_length=1, max_length=64)]
    price: Annotated[float, Meta(gt=0.0, le=FLOAT_MAX)]
    volume: NonNeg | None = None


# --- engine feedback (qas.feedback) --------------------------------------------------------


class FeedbackReport(Envelope, frozen=True, kw_only=True):
    """What the engine measured over one interval: the decider's target-tracking input.

    Latencies are per batch, in milliseconds, against the engine's own objective; memory is the
    engine process's resident set against the limit it runs under (None: unlimited).
    """

    interval_seconds: NonNeg
    decision_id: str | None = None  # the decision in force during the interval
    scaling_factor: NonNeg | None = None  # its factor (target tracking acts on the cap it ran at)
    batches: Count = 0
    batch_size: Annotated[int, Meta(ge=1)] = 1  # items per batch during the interval
    precision_bits: Count | None = None
    latency_p50_ms: NonNeg
    latency_p99_ms: NonNeg
    latency_objective_ms: Annotated[float, Meta(gt=0.0, le=FLOAT_MAX)]
    throughput_per_second: NonNeg = 0.0  # items computed per second
    resident_memory_bytes: Bytes
    memory_limit_bytes: Bytes | None = None
    queue_depth: Count = 0
    dropped_ticks: Count = 0
    late_ticks: Count = 0
    store_bytes: Bytes = 0  # the engine-side tiered store
    store_error_bound: NonNeg = 0.0  # its largest relative error bound
    # The engine's own batch bounds and its configured batch (shared/cost_model.py sizes the
    # batch in [batch_min, min(batch_configured, batch_max)]). UNSET (not declared) is left out
    # of the encoding, so a report without them keeps its bytes in a signed decision's inputs.
    batch_min: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    batch_max: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    batch_configured: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    # The engine's memory controller (None: none ran): the store budget it set, the use it held
    # against the limit, where both were read, and why it moved or held the budget
    store_budget_bytes: Bytes | None = None
    memory_used_bytes: Bytes | None = None
    memory_source: Literal["cgroup-v1", "cgroup-v2", "declared", "rss"] | None = None
    memory_pressure: Unit | None = None  # cgroup v2 memory.pressure, some avg10
    memory_note: Annotated[str, Meta(max_length=1024)] | None = None


# --- decisions (qas.decisions) ------------------------------------------------------------


class DecisionInputs(Struct, frozen=True, kw_only=True):
    """Everything the pure core read to make a decision: enough to replay it exactly."""

    market_entropy: Unit
    profit_potential: Unit
    thermal_state: Unit
    entropy_age_seconds: NonNeg | None = None  # None: never received
    profit_age_seconds: NonNeg | None = None
    sensors_age_seconds: NonNeg | None = None
    hardware_changed: bool = False
    fingerprint: Fingerprint | None = None
    coherence_score: Unit = 0.0
    harmonic_coherence: Unit = 0.0
    effective_memory_bytes: Bytes = 0
    memory_available_bytes: Bytes | None = None
    effective_cores: NonNeg = 1.0
    gpu_free_bytes: Bytes | None = None  # summed over GPUs; None on CPU-only hosts
    thermal_throttling: bool = False
    top_precision_bits: Literal[64, 80] = 80  # 80 where numpy.longdouble is x87 extended
    market_confidence: Unit = 1.0  # the entropy estimate's own confidence (warm-up)
    market_note: str = ""  # why it is below 1
    feedback: FeedbackReport | None = None  # the engine's latest report (None: none fresh)
    feedback_age_seconds: NonNeg | None = None


class PriorState(Struct, frozen=True, kw_only=True):
    """The stabiliser's memory before this decision (published so a replay needs nothing else)."""

    sequence: Count = 0
    scaling_factor: NonNeg | None = None  # last published factor
    precision_bits: Count | None = None
    decided_at: Finite | None = None
    # Max-queues of (time, recommended value) inside the scale-down window: the front is the
    # highest recommendation still in the window, which is what a scale-down may go down to.
    recent_factors: list[tuple[Finite, Finite]] = []
    recent_bits: list[tuple[Finite, int]] = []
    # EWMA of the market inputs (time constant DecisionConstants.smoothing_seconds).
    smoothed_entropy: Unit | None = None
    smoothed_profit: Unit | None = None
    smoothed_at: Finite | None = None
    # Engine feedback (shared/feedback.py): the caps and the cost model's batch, None = none.
    feedback_at: Finite | None = None  # event time of the last report folded in
    engine_factor_cap: NonNeg | None = None
    engine_batch_cap: Annotated[int, Meta(ge=1)] | None = None  # the cost model's last batch
    engine_budget_cap: Bytes | None = None
    engine_bits_cap: Count | None = None
    # The cost model's window of (items per batch, p99 ms) from the engine's reports, oldest
    # first (shared/cost_model.py). UNSET (none) is left out of the encoding, so a decision
    # made without feedback keeps the bytes a signature covers.
    cost_points: list[tuple[Annotated[int, Meta(ge=1)], NonNeg]] | UnsetType = UNSET


class ScalingDecision(Envelope, frozen=True, kw_only=True):
    decision_id: Annotated[str, Meta(min_length=1, max_length=300)]
    sequence: Annotated[int, Meta(ge=1)]
    scaling_factor: Annotated[float, Meta(ge=0.0, le=100.0)]
    memory_adjustment: Annotated[float, Meta(ge=0.0, le=100.0)]
    memory_budget_bytes: Bytes
    precision_bits: Bits
    precision_tier: str
    batch_size: Annotated[int, Meta(ge=1)]
    workers: Annotated[int, Meta(ge=1)]
    confidence: Unit
    quantum_state: QuantumState
    coherence_score: Unit
    entropy_value: Unit
    quantum_phase: Phase
    triggers: list[Trigger] = []
    reasons: list[str] = []
    apply_after_seconds: NonNeg = 0.0  # per-host jitter: the applier waits this long
    urgent: bool = False  # thermal safety or a hardware change: no jitter, no window
    stabilized: bool = True  # False for the library's direct answers (no stabiliser)
    inputs: DecisionInputs
    prior: PriorState
    # Sequences restart at 1 with the decider; replay protection orders (sequence_epoch,
    # sequence), so the decider stamps its start time (ms) here. Covered by the signature.
    sequence_epoch: Annotated[int, Meta(ge=0)] = 0
    key_id: Annotated[str, Meta(max_length=64)] | None = None  # which key signed it
    signature: str | None = None  # Ed25519, hex (see shared/signing.py)


# --- apply results (qas.applied) ----------------------------------------------------------


class EngineConfig(Struct, frozen=True, kw_only=True):
    """What the trading engine should adopt: published with each apply result."""

    precision_bits: Count
    precision_tier: str
    batch_size: Annotated[int, Meta(ge=1)]
    workers: Annotated[int, Meta(ge=1)]
    memory_budget_bytes: Bytes
    scaling_factor: NonNeg


class ActuatorResult(Struct, frozen=True, kw_only=True):
    actuator: str
    status: ApplyStatus
    detail: str
    dry_run: bool = False
    bytes_before: Bytes | None = None  # memory pools only
    bytes_after: Bytes | None = None
    error_bound: NonNeg | None = None


class ApplyResult(Envelope, frozen=True, kw_only=True):
    decision_id: str
    decision_event_time: Finite
    status: ApplyStatus
    reason: str = ""
    bytes_before: Bytes = 0
    bytes_after: Bytes = 0
    error_bound: NonNeg = 0.0  # largest relative error of any stored value after applying
    duration_seconds: NonNeg = 0.0
    engine_config: EngineConfig | None = None
    actuators: list[ActuatorResult] = []
    # The enacted decision's (sequence_epoch, sequence): a restarted applier's second source of
    # its replay watermark, read back from qas.applied (0, 0: not an enacted decision).
    sequence_epoch: Annotated[int, Meta(ge=0)] = 0
    sequence: Annotated[int, Meta(ge=0)] = 0


# --- dead letters (qas.dlq) ---------------------------------------------------------------


class DeadLetter(Envelope, frozen=True, kw_only=True):
    topic: str
    partition: int
    offset: int
    reason: str
    payload: bytes  # the original bytes, base64 in JSON; only the first ones when truncated
    key: bytes | None = None
    service: str = ""
    # Set when the payload was too big to carry whole (shared/bounds.py): the original size
    # and the SHA-256 (hex) of the whole original payload.
    size: Bytes = 0
    sha256: str = ""


# --- codec ----------------------------------------------------------------------------------

M = TypeVar("M", bound=Struct)

_encoder = msgspec.json.Encoder()


class InvalidMessage(ValueError):
    """A message that must not be published or consumed, with a readable reason."""


def decoder(kind: type[M]) -> msgspec.json.Decoder[M]:
    return msgspec.json.Decoder(kind)


def _check(kind: type[Struct], mode: Mode) -> Check | None:
    check = checker(kind, mode)
    if isinstance(check, Unsupported):
        raise TypeError(
            f"{kind.__name__} declares {check}, which shared/validation.py cannot check: "
            "declare it so it can be, or teach validation.py the type"
        )
    return check


def _fail(msg: Struct, fault: tuple[str, str]) -> InvalidMessage:
    path, why = fault
    name = type(msg).__name__
    if why.startswith("is "):
        return InvalidMessage(f"{name}{path} {why}")
    return InvalidMessage(f"{name}: {why} - at `${path}`")


def _enforce(msg: Struct, mode: Mode) -> None:
    """Run the type's compiled check (shared/validation.py), the one finiteness and range check."""
    check = _check(type(msg), mode)
    fault = None if check is None else check(msg)
    if fault is not None:
        raise _fail(msg, fault)


def decode(data: bytes, kind: type[M], dec: msgspec.json.Decoder[M] | None = None) -> M:
    """Decode and validate; raises InvalidMessage with the reason."""
    try:
        msg = (dec or msgspec.json.Decoder(kind)).decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidMessage(f"{kind.__name__}: {exc}") from None
    except (UnicodeDecodeError, RecursionError) as exc:  # invalid UTF-8 in a string; deep JSON
        raise InvalidMessage(f"{kind.__name__}: {exc!r}") from None
    # Every float field is bounded, so msgspec has refused infinity already; the compiled
    # check is then None and costs nothing. It guards a float field added without a bound.
    _enforce(msg, DECODED)
    version = getattr(msg, "schema_version", SCHEMA_VERSION)
    if version > SCHEMA_VERSION:  # a newer major schema may change meanings: refuse, loudly
        raise InvalidMessage(
            f"{kind.__name__}: schema_version {version} is newer than {SCHEMA_VERSION}"
        )
    return msg


def validate(msg: M) -> M:
    """Apply the decode-time checks to a message built in code (NaN, inf, ranges, patterns)."""
    _enforce(msg, FULL)
    return msg


def encode(msg: Struct) -> bytes:
    """Validate, then serialise to JSON bytes, once.

    msgspec checks Meta constraints (ranges, patterns) only on decode, and writes NaN and
    infinity as null (which an optional field would take for "absent"): the type's compiled
    check (shared/validation.py) runs them all on the struct first; nothing is decoded again.
    """
    _enforce(msg, FULL)
    return _encoder.encode(msg)


def encode_exact(msg: M) -> tuple[M, bytes]:
    """(the message as a reader decodes it, its bytes): :func:`encode`, for bytes that must be
    exactly what a reader re-encodes after decoding them (a signature covers them).

    The one difference a decode makes is an int in a float field (written ``1``, read back
    ``1.0``): the exact check reports it, and only then is the message normalised through a
    decode of its bytes; otherwise it is checked and encoded once.
    """
    check = _check(type(msg), EXACT)
    fault = None if check is None else check(msg)
    if fault is not None:
        if fault[1] != INT_IN_FLOAT:
            raise _fail(msg, fault)
        _enforce(msg, FULL)  # a fault after the int: raise it with its own wording
        msg = msgspec.json.decode(_encoder.encode(msg), type=type(msg))
    return msg, _encoder.encode(msg)
