"""The Kafka consumer's commit runs beside the consume loop: a broker that answers commits
slowly, or not at all (a restarted Tansu times every one out), must not stop records being
handled. The aiokafka consumer is replaced by one whose commits are driven by the test."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.bus import kafka
from services.bus.base import Record
from services.bus.kafka import REJOIN_AFTER_LOST_COMMITS, KafkaBus, KafkaConsumer


class _Commits:
    """Stands in for AIOKafkaConsumer.commit: records each call, answers when released."""

    def __init__(self) -> None:
        self.calls: list[dict[TopicPartition, int]] = []
        self.release = asyncio.Event()
        self.seeks: dict[TopicPartition, int] = {}
        self.answering = False  # whether the broker answers this member's fetches

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("t", 0)}

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        """When the last fetch response for ``tp`` arrived (epoch ms), as aiokafka keeps it."""
        return int(time.time() * 1000) if self.answering else None

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.calls.append(dict(offsets))
        await self.release.wait()

    async def stop(self) -> None:
        return None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


def _consumer(commits: Any, send_timeout: float = 5.0) -> KafkaConsumer:
    bus = KafkaBus("127.0.0.1:9", send_timeout=send_timeout)  # never started: nothing connects
    consumer = KafkaConsumer(bus, ["t"], "g")
    consumer._consumer = commits
    return consumer


async def _sent(commits: _Commits, n: int) -> None:
    while len(commits.calls) < n:
        await asyncio.sleep(0.001)


def _rec(partition: int, offset: int) -> Record:
    return Record("t", partition, offset, b"k", b"{}")


async def _commit_until_rejoined(consumer: KafkaConsumer, within: float) -> list[int]:
    """Commit a new offset every 5 ms, as the consume loop does, until the consumer rejoins
    (stubbed); returns the lost-commit count each rejoin saw."""
    rejoined: list[int] = []

    async def rejoin() -> None:
        rejoined.append(consumer._lost_commits)

    consumer._rejoin = rejoin  # type: ignore[method-assign]
    offset = 0
    async with asyncio.timeout(within):
        while not rejoined:
            offset += 1
            await consumer.commit([_rec(0, offset)])
            await asyncio.sleep(0.005)
    return rejoined


async def test_commit_returns_while_the_broker_holds_the_commit_and_sends_only_the_newest() -> None:
    commits = _Commits()
    consumer = _consumer(commits)
    async with asyncio.timeout(1):  # each call returns at once, though no commit was answered
        await consumer.commit([_rec(0, 4)])
        await _sent(commits, 1)  # the commit task has sent the first offsets
        await consumer.commit([_rec(0, 9), _rec(1, 2)])
        await consumer.commit([_rec(0, 12)])
    assert commits.calls == [{TopicPartition("t", 0): 5}]
    commits.release.set()
    async with asyncio.timeout(1):
        await consumer.flush(1.0)
    # The two batches queued behind the first went in one commit, newest offset per partition.
    assert commits.calls[1:] == [{TopicPartition("t", 0): 13, TopicPartition("t", 1): 3}]


async def test_timed_out_commits_lead_to_a_rejoin_from_the_consume_loop() -> None:
    commits = _Commits()  # never released: every commit times out
    consumer = _consumer(commits, send_timeout=0.01)
    rejoined = await _commit_until_rejoined(consumer, within=5.0)
    assert len(commits.calls) == REJOIN_AFTER_LOST_COMMITS
    assert rejoined == [REJOIN_AFTER_LOST_COMMITS]


async def test_flush_is_bounded_when_the_broker_never_answers() -> None:
    commits = _Commits()
    consumer = _consumer(commits)
    await consumer.commit([_rec(0, 1)])
    async with asyncio.timeout(1):
        await _sent(commits, 1)
    async with asyncio.timeout(2):  # bounded by the flush, not by the 5 s commit limit
        await consumer.flush(0.05)
    assert consumer._committing is not None and consumer._committing.done()


async def test_a_rejoin_goes_on_from_the_handled_offsets_not_the_earliest() -> None:
    commits = _Commits()
    commits.release.set()
    consumer = _consumer(commits)
    stops: list[int] = []

    async def start() -> None:  # the fresh member: the same stand-in, joined again
        consumer._consumer = commits

    async def stop() -> None:
        stops.append(1)
        consumer._consumer = None

    consumer.start = start  # type: ignore[method-assign]
    consumer.stop = stop  # type: ignore[method-assign]
    await consumer.commit([_rec(0, 4), _rec(1, 7)])
    await consumer.commit([_rec(0, 9)])
    await consumer.flush(1.0)
    commits.release.clear()
    sent = len(commits.calls)
    await consumer.commit([_rec(0, 11)])  # sent; the broker does not answer yet
    async with asyncio.timeout(1):
        await _sent(commits, sent + 1)
    await consumer.commit([_rec(1, 8)])  # queued behind it
    assert consumer._pending == {TopicPartition("t", 1): 9}
    consumer.revoked({TopicPartition("t", 1)})  # lost in a rebalance: the group's offset counts
    assert consumer._pending == {}  # not ours to commit any more
    commits.release.set()
    await consumer._rejoin()
    assert stops == [1]
    consumer.resume_at({TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)})
    assert commits.seeks == {TopicPartition("t", 0): 12}
    consumer.resume_at({TopicPartition("t", 0)})  # a later, ordinary rebalance: no seek
    assert commits.seeks == {TopicPartition("t", 0): 12}


async def test_a_commit_unanswered_while_fetches_are_answered_leads_to_a_rejoin_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A restarted broker that forgot the member answers its fetches, never its commits: one
    # such commit is enough, well inside the commit time-out.
    monkeypatch.setattr(kafka, "COMMIT_REFUSED_SECONDS", 0.02)
    commits = _Commits()  # never released
    commits.answering = True
    consumer = _consumer(commits, send_timeout=5.0)
    rejoined = await _commit_until_rejoined(consumer, within=2.0)  # less than one time-out
    assert len(commits.calls) == 1
    assert rejoined == [1]


async def test_a_commit_unanswered_while_fetches_are_not_waits_for_its_time_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A paused broker answers neither: that is slowness, not refusal; one time-out counts once.
    monkeypatch.setattr(kafka, "COMMIT_REFUSED_SECONDS", 0.01)
    commits = _Commits()
    consumer = _consumer(commits, send_timeout=0.2)
    await consumer.commit([_rec(0, 1)])
    await asyncio.sleep(0.1)
    assert consumer._lost_commits == 0  # still waiting: refusal is not assumed
    async with asyncio.timeout(5):
        while consumer._lost_commits < 1:
            await asyncio.sleep(0.005)
    assert not consumer._rejoin_due


async def test_a_rejoin_frees_the_old_clients_garbage_before_the_fresh_one_starts() -> None:
    class _Client:  # an aiokafka client holds itself in cycles (fetcher, coordinator, futures)
        def __init__(self) -> None:
            self.me = self

    old = _Client()
    gone = weakref.ref(old)
    consumer = _consumer(old)
    freed_at_start: list[bool] = []

    async def stop() -> None:
        consumer._consumer = None

    async def start() -> None:
        freed_at_start.append(gone() is None)

    consumer.stop = stop  # type: ignore[method-assign]
    consumer.start = start  # type: ignore[method-assign]
    del old
    gc.disable()  # only the rejoin's own collection may free it
    try:
        await consumer._rejoin()
    finally:
        gc.enable()
    assert freed_at_start == [True]
