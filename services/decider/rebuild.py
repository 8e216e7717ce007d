"""Read back what a decider needs before it decides for newly assigned hosts (shared/rebuild.py).

A decider that starts, restarts or takes over partitions in a rebalance resumes the group at the
committed offsets, so it would never see the compacted hardware snapshot again: for the
partitions just assigned it reads the hardware topic from the beginning and the tails of the
decisions and sensors topics with a group-less reader, bounded in time. Every topic is keyed by
host id with the same partition count, so partition p of each holds the same hosts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeVar

from msgspec import Struct

from services.bus.base import Bus, BusError, Record
from shared.bounds import refusal
from shared.config import Settings
from shared.messages import (
    HardwareSnapshot,
    MarketEntropy,
    PriorState,
    ProfitPotential,
    ScalingDecision,
    SensorReading,
    decode,
)
from shared.rebuild import latest_per_host, market_inputs, prior_after

log = logging.getLogger("qas.decider")

READ_BACK_SECONDS = 15.0
DECISIONS_TAIL = 1000  # last records per partition of the decisions topic
SENSORS_TAIL = 200  # readings older than the last few go stale anyway


@dataclass
class Rebuilt:
    hardware: dict[str, HardwareSnapshot]
    priors: dict[str, PriorState]
    sensors: dict[str, SensorReading]
    market: dict[str, tuple[MarketEntropy | None, ProfitPotential | None]]
    epochs: dict[str, int]  # the sequence epoch of each host's last decision


S = TypeVar("S", bound=Struct)


def _decoded(records: list[Record], kind: type[S], stats: Counter[str]) -> list[S]:
    out: list[S] = []
    for r in records:
        try:
            if refusal(r.value):
                raise ValueError("out of bounds")
            out.append(decode(r.value, kind))
        except Exception:  # the consume loop dead-letters these; here they are only skipped
            stats["rebuild_skipped"] += 1
    return out


async def read_back_state(
    bus: Bus, settings: Settings, stats: Counter[str], partitions: Collection[int] | None = None
) -> Rebuilt:
    """The state the bus holds for the hosts of ``partitions`` (None: every partition)."""
    t = settings.topics
    # At once: a takeover's hosts wait for the slowest of the three, not for their sum. Each
    # topic stands alone: decisions that cannot be read back do not cost the hardware snapshot.
    wanted = ((t.hardware, None), (t.decisions, DECISIONS_TAIL), (t.sensors, SENSORS_TAIL))
    results = await asyncio.gather(
        *(bus.read_back([topic], READ_BACK_SECONDS, tail, partitions) for topic, tail in wanted),
        return_exceptions=True,
    )
    read: list[list[Record]] = []
    for (topic, _), result in zip(wanted, results, strict=True):
        if isinstance(result, BusError):  # deciding from less beats not deciding: say so, go on
            stats["rebuild_failed"] += 1
            log.warning("state rebuild goes on without %s: %s", topic, result)
            read.append([])
        elif isinstance(result, BaseException):
            raise result
        else:
            read.append(result)
    hw_records, decision_records, sensor_records = read
    hardware = latest_per_host(_decoded(hw_records, HardwareSnapshot, stats))
    sensors = latest_per_host(_decoded(sensor_records, SensorReading, stats))
    priors: dict[str, PriorState] = {}
    market = {}
    epochs: dict[str, int] = {}
    for host, d in latest_per_host(_decoded(decision_records, ScalingDecision, stats)).items():
        try:
            priors[host] = prior_after(d, settings.decision)
        except Exception:  # a decision that does not replay: that host starts afresh
            stats["rebuild_skipped"] += 1
            continue
        market[host] = market_inputs(d)
        epochs[host] = d.sequence_epoch
    stats["rebuilds"] += 1
    log.info(
        "state rebuilt for partitions %s: hardware for %d host(s), last decision for %d host(s) "
        "(%d records read)", "all" if partitions is None else sorted(partitions), len(hardware),
        len(priors), len(hw_records) + len(decision_records) + len(sensor_records),
    )  # fmt: skip
    return Rebuilt(hardware, priors, sensors, market, epochs)
