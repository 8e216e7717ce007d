"""In-process bus for the embedded default and unit tests.

Semantics that matter, as Kafka gives them: each topic has partitions chosen by key hash (so
one host's events stay in order), every consumer group sees every record, and a group resumes
from its committed offset (uncommitted records are redelivered: at-least-once). One active
consumer per group. Records every group has committed are trimmed, and each partition keeps
at most ``retention`` records, so a long run does not grow without bound.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Collection, Sequence

from services.bus.base import Record, commit_offsets


class _Partition:
    __slots__ = ("base", "records")

    def __init__(self) -> None:
        self.base = 0  # offset of records[0]
        self.records: list[Record] = []

    @property
    def end(self) -> int:
        return self.base + len(self.records)


class MemoryBus:
    def __init__(self, partitions: int = 3, retention: int = 100_000) -> None:
        self._n = partitions
        self._retention = retention
        self._topics: dict[str, list[_Partition]] = {}
        self._committed: dict[str, dict[tuple[str, int], int]] = {}  # group -> offsets
        self._changed = asyncio.Condition()

    @property
    def connected(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def _parts(self, topic: str) -> list[_Partition]:
        parts = self._topics.get(topic)
        if parts is None:
            parts = self._topics[topic] = [_Partition() for _ in range(self._n)]
        return parts

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        raw_key = key.encode()
        index = zlib.crc32(raw_key) % self._n
        part = self._parts(topic)[index]
        part.records.append(Record(topic, index, part.end, raw_key, value, int(time.time() * 1000)))
        self._trim(topic, index, part)
        async with self._changed:
            self._changed.notify_all()

    def _trim(self, topic: str, index: int, part: _Partition) -> None:
        groups = [g for g in self._committed.values() if (topic, index) in g]
        floor = min((g[(topic, index)] for g in groups), default=part.base)
        floor = max(floor, part.end - self._retention)
        drop = floor - part.base
        if drop > 0:
            del part.records[:drop]
            part.base = floor

    def consumer(self, topics: Sequence[str], group: str) -> MemoryConsumer:
        return MemoryConsumer(self, list(topics), group)

    def group_lag(self, group: str) -> dict[tuple[str, int], int]:
        """Records past a group's committed offsets, per (topic, partition) it has joined."""
        committed = self._committed.get(group, {})
        return {
            (topic, i): max(0, self._parts(topic)[i].end - offset)
            for (topic, i), offset in committed.items()
        }

    async def read_back(
        self,
        topics: Sequence[str],
        seconds: float,
        tail: int | None = None,
        partitions: Collection[int] | None = None,
    ) -> list[Record]:
        out: list[Record] = []
        for topic in topics:
            for i, part in enumerate(self._parts(topic)):
                if partitions is None or i in partitions:
                    out += part.records if tail is None else part.records[-tail:]
        return out


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, topics: list[str], group: str) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._position: dict[tuple[str, int], int] = {}
        self._assigned: set[tuple[str, int]] = set()

    async def start(self) -> None:
        committed = self._bus._committed.setdefault(self._group, {})
        for topic in self._topics:
            for i, part in enumerate(self._bus._parts(topic)):
                committed.setdefault((topic, i), part.base)
                self._position[(topic, i)] = max(committed[(topic, i)], part.base)
        self._assigned = set(self._position)  # one consumer per group: every partition

    async def stop(self) -> None:
        self._position.clear()
        self._assigned.clear()

    def take_assigned(self) -> set[tuple[str, int]]:
        taken, self._assigned = self._assigned, set()
        return taken

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for (topic, i), pos in self._position.items():
            part = self._bus._parts(topic)[i]
            pos = max(pos, part.base)
            batch = part.records[pos - part.base : pos - part.base + max_records - len(out)]
            out.extend(batch)
            self._position[(topic, i)] = pos + len(batch)
            if len(out) >= max_records:
                break
        return out

    async def getmany(self, timeout: float, max_records: int = 500) -> list[Record]:
        out = self._take(max_records)
        if out or timeout <= 0:
            return out
        cond = self._bus._changed
        try:
            async with cond:
                await asyncio.wait_for(cond.wait_for(lambda: self._has_new()), timeout)
        except TimeoutError:
            return []
        return self._take(max_records)

    def _has_new(self) -> bool:
        return any(
            self._bus._parts(topic)[i].end > pos for (topic, i), pos in self._position.items()
        )

    async def lag(self) -> dict[tuple[str, int], int]:
        return {
            (topic, i): max(0, self._bus._parts(topic)[i].end - pos)
            for (topic, i), pos in self._position.items()
        }

    async def commit(self, records: Sequence[Record]) -> None:
        committed = self._bus._committed.setdefault(self._group, {})
        for key, offset in commit_offsets(records).items():
            committed[key] = max(committed.get(key, 0), offset)
