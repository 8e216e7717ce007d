"""The bus interface the services are written against."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

import msgspec


class BusError(RuntimeError):
    """The broker is unreachable or refused us; the message says what to do.

    ``retriable`` (as aiokafka marks its errors): the same call may succeed later, so loops back
    off and try again; a fatal error ends the service with this message.
    """

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class Record(msgspec.Struct, frozen=True):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int = 0


class Consumer(Protocol):
    """At-least-once: records are redelivered until committed (last offset + 1 per partition)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def getmany(self, timeout: float, max_records: int = 500) -> list[Record]: ...
    async def commit(self, records: Sequence[Record]) -> None: ...
    async def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the end, per (topic, partition) this consumer reads (for /metrics)."""
        ...

    def take_assigned(self) -> set[tuple[str, int]]:
        """The (topic, partition)s assigned to this consumer since the last call (a start, a
        restart, a takeover in a rebalance); each is returned once."""
        ...


class Bus(Protocol):
    @property
    def connected(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, topic: str, key: str, value: bytes) -> None: ...
    def consumer(self, topics: Sequence[str], group: str) -> Consumer: ...
    async def read_back(
        self,
        topics: Sequence[str],
        seconds: float,
        tail: int | None = None,
        partitions: Collection[int] | None = None,
    ) -> list[Record]:
        """What the topics hold now, read without a group (no committed offset moves): from the
        beginning, or only the last ``tail`` records of each partition; only the given partition
        numbers when ``partitions`` is set; bounded by ``seconds`` (raises a retriable BusError
        when the broker cannot answer in time)."""
        ...


def commit_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    """The offsets to commit after processing: last offset + 1 per (topic, partition)."""
    out: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        out[key] = max(out.get(key, 0), r.offset + 1)
    return out
