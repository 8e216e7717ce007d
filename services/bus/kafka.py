"""Kafka transport through aiokafka.

Producer: ``acks="all"`` and ``enable_idempotence=True``. Some Kafka-protocol brokers cannot
serve aiokafka's InitProducerId request (aiokafka only speaks version 0 of it; Tansu answers it
with UNKNOWN_SERVER_ERROR). Then we fall back to ``acks="all"`` without idempotence, log a
warning once and report ``idempotent = False``: a retried send may then duplicate a record,
which every QAS consumer tolerates (the applier is idempotent by decision id).

Consumers: a consumer group, ``enable_auto_commit=False``, ``getmany`` and an explicit commit of
last offset + 1 per partition after processing (at-least-once), with a rebalance listener. The
commit runs in a task of its own, newest offsets only, so a broker slow to answer commits (a
restarted Tansu times every one out) never stops records being handled; a stop, a revoke and
a rejoin wait for it, bounded.
aiokafka raises from ``start()`` while the broker is not up, so start-up retries with backoff
inside a time budget; every send is bounded by a timeout because aiokafka can wait forever
while the broker is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    RequestTimedOutError,
    UnknownError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
)

from services.bus.base import BusError, Record, commit_offsets
from services.bus.security import BrokerSecurity, preflight

log = logging.getLogger("qas.bus.kafka")

# Worth retrying at start-up: the broker is not listening or not ready yet.
# Closing a client (leave the group, flush) waits for the broker at most this long: a stop must
# not wait on a broker that is away.
CLOSE_SECONDS = 3.0
# A stop commits what was handled first, waiting at most this long: with the close, still well
# inside the services' stop grace (app/runtime.py STOP_GRACE_SECONDS).
FLUSH_ON_STOP_SECONDS = 1.0
# Commits refused or timed out in a row before the consumer leaves and rejoins its group.
REJOIN_AFTER_LOST_COMMITS = 3
# A commit unanswered this long while the broker answers this member's fetches is refused, not
# slow: the consumer rejoins at once (_commit_unless_refused). A commit takes milliseconds on a
# broker that answers fetches.
COMMIT_REFUSED_SECONDS = 2.0
# Sends refused with UNKNOWN_SERVER_ERROR tried again at once, at most this many times (see publish).
TAKEN_OFFSET_TRIES = 64
LAG_SECONDS = 0.5  # the most one partition's position may take when lag is read

_NOT_UP = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, OSError)


def bus_error(what: str, exc: BaseException) -> BusError:
    """A BusError for a failed broker call, retriable as aiokafka marks its error (a time-out
    is retriable: the broker may be back on the next call)."""
    if isinstance(exc, TimeoutError):
        return BusError(f"{what} timed out", retriable=True)
    return BusError(f"{what} failed: {exc!r}", retriable=bool(getattr(exc, "retriable", False)))


async def retry_start(
    what: str,
    start: Callable[[], Awaitable[Any]],
    cleanup: Callable[[], Awaitable[Any]],
    budget_seconds: float,
    bootstrap: str,
) -> None:
    """Call ``start`` until it succeeds or the budget is spent (backoff 0.2 s doubling to 2 s).

    Cancellable at every await (a stop while connecting cancels it, app/runtime.py): a start
    cancelled half-way is cleaned up, bounded by CLOSE_SECONDS, before the cancellation goes on.
    """
    deadline = time.monotonic() + budget_seconds
    delay = 0.2
    while True:
        try:
            await start()
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cleanup(), CLOSE_SECONDS)
            raise
        except _NOT_UP as exc:
            await cleanup()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BusError(
                    f"cannot reach Kafka at {bootstrap} after {budget_seconds:g} s ({what}: "
                    f"{type(exc).__name__}: {exc or 'no detail'})"
                ) from None
            log.warning("%s: broker not ready (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(min(delay, left))
            delay = min(2.0, delay * 2)


class KafkaBus:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "qas",
        connect_timeout: float = 30.0,
        send_timeout: float = 10.0,
        idempotence: bool = True,
        session_timeout: float = 6.0,
        fetch_max_wait: float = 0.01,
        compacted_topics: Sequence[str] = (),
        topics: Sequence[str] = (),
        security: BrokerSecurity | None = None,
        partitions: int = 3,
    ) -> None:
        self.bootstrap = bootstrap_servers
        # Partitions of the topics QAS creates (existing topics keep theirs): the most deciders
        # of one group that can each own hosts (README "A fleet of deciders").
        self.partitions = partitions
        # TLS/SASL kwargs for every client (services/bus/security.py); built once, so a bad
        # setting or an unreadable CA file fails here, before anything connects.
        self.security = (security or BrokerSecurity()).client_kwargs()
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.want_idempotence = idempotence
        # Kafka's smallest default-allowed session timeout: a new group's first join waits
        # about half of it on Tansu (and group.initial.rebalance.delay.ms, 3 s, on Kafka).
        self.session_timeout = session_timeout
        # Kafka answers a fetch as soon as one byte is there; Tansu waits the full max wait,
        # so this bounds decision latency on it (aiokafka's default is 500 ms). 10 ms: Kafka
        # p99 about 4x lower than at 100 ms at the same throughput (README Benchmarks).
        self.fetch_max_wait = fetch_max_wait
        self.idempotent = False
        self._topics = list(topics)
        self._compacted = set(compacted_topics)
        self._producer: AIOKafkaProducer | None = None
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def producer_options(self, idempotent: bool) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap,
            "client_id": f"{self.client_id}-producer",
            "acks": "all",
            "enable_idempotence": idempotent,
            "linger_ms": 0,
            "request_timeout_ms": int(self.send_timeout * 1000),
            **self.security,
        }

    async def start(self) -> None:
        await preflight(self.bootstrap, self.security, self.connect_timeout)
        await self._ensure_topics()
        idempotent = self.want_idempotence
        producer = AIOKafkaProducer(**self.producer_options(idempotent))
        try:
            await retry_start(
                "producer", producer.start, producer.stop, self.connect_timeout, self.bootstrap
            )
        except (UnknownError, UnsupportedVersionError) as exc:
            await producer.stop()
            if not idempotent:
                raise BusError(f"Kafka at {self.bootstrap} refused the producer: {exc!r}") from None
            log.warning(
                "broker %s refused the idempotent producer's InitProducerId request (%r); "
                "continuing with acks=all without idempotence (consumers deduplicate)",
                self.bootstrap,
                exc,
            )
            idempotent = False
            producer = AIOKafkaProducer(**self.producer_options(idempotent))
            await retry_start(
                "producer", producer.start, producer.stop, self.connect_timeout, self.bootstrap
            )
        except KafkaError as exc:
            await producer.stop()
            raise BusError(f"Kafka at {self.bootstrap} refused the producer: {exc!r}") from None
        self._producer = producer
        self.idempotent = idempotent
        self._connected = True

    async def recreate_topics(self) -> None:
        """Create again the topics that disappeared (a broker rebuilt or a topic deleted); bounded
        by the connect time-out, and a failure is only logged (the next fault tries again)."""
        try:
            await asyncio.wait_for(self._ensure_topics(), self.connect_timeout)
        except (TimeoutError, KafkaError, BusError) as exc:
            log.warning("recreating topics failed: %r", exc)

    async def _ensure_topics(self) -> None:
        """Create the topics we own (hardware compacted); brokers that auto-create need not."""
        if not self._topics:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id=self.client_id, **self.security
        )
        await retry_start("admin", admin.start, admin.close, self.connect_timeout, self.bootstrap)
        try:
            existing = set(await admin.list_topics())
            new = [
                NewTopic(
                    t,
                    num_partitions=self.partitions,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"} if t in self._compacted else {},
                )
                for t in self._topics
                if t not in existing
            ]
            if new:
                if existing:  # some of ours are gone while the broker has others: say so
                    log.warning(
                        "creating %d missing topic(s) %s (%d present); consumer groups resume "
                        "at the earliest offset that exists",
                        len(new), [t.name for t in new], len(existing),
                    )  # fmt: skip
                try:
                    await admin.create_topics(new)
                except KafkaError as exc:  # raced with another service, or not allowed
                    log.info("create_topics: %s (topics may already exist)", exc)
        finally:
            await admin.close()

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        self._connected = False
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), min(self.send_timeout, CLOSE_SECONDS))
            except (TimeoutError, KafkaError) as exc:
                log.warning("producer did not close cleanly: %s", exc)

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        if self._producer is None:
            raise BusError("publish before start")
        deadline = time.monotonic() + self.send_timeout
        tries = 0
        while True:
            tries += 1
            try:
                await asyncio.wait_for(
                    self._producer.send_and_wait(topic, value, key=key.encode()),
                    max(0.0, deadline - time.monotonic()),
                )
                break
            except TimeoutError:
                self._connected = False
                raise BusError(
                    f"send to {topic} timed out after {self.send_timeout:g} s"
                ) from None
            except UnknownError as exc:
                # UNKNOWN_SERVER_ERROR: on Tansu 0.6, an offset already taken. A restarted Tansu
                # stores produces to topics it no longer knows, and creating them again starts
                # their offsets at 0, so it refuses each later produce there ("AlreadyExists" in
                # its log) until as many have been tried as it had stored. A refused try moves it
                # one offset on, so trying again at once gets through: waiting seconds between
                # tries kept the soak's decider refused for 51 to 86 s after a restart.
                if tries < TAKEN_OFFSET_TRIES and time.monotonic() < deadline:
                    continue
                self._connected = False
                raise BusError(f"send to {topic} failed {tries} times: {exc}") from None
            except KafkaError as exc:
                self._connected = False
                raise BusError(f"send to {topic} failed: {exc}") from None
        if tries > 1:
            log.warning("send to %s taken at try %d (the broker refused the others)", topic, tries)
        self._connected = True

    def consumer(self, topics: Sequence[str], group: str) -> KafkaConsumer:
        return KafkaConsumer(self, list(topics), group)

    async def read_back(
        self,
        topics: Sequence[str],
        seconds: float,
        tail: int | None = None,
        partitions: Collection[int] | None = None,
    ) -> list[Record]:
        try:
            return await asyncio.wait_for(self._read_back(topics, tail, partitions), seconds)
        except (TimeoutError, KafkaError) as exc:
            raise bus_error(f"reading back {list(topics)}", exc) from None

    async def _read_back(
        self, topics: Sequence[str], tail: int | None, partitions: Collection[int] | None
    ) -> list[Record]:
        # No group: assigned partitions, positions set here, nothing committed.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-readback",
            enable_auto_commit=False,
            fetch_max_wait_ms=int(self.fetch_max_wait * 1000),
            **self.security,
        )
        await consumer.start()
        try:
            await consumer.topics()  # metadata for every topic, so partitions_for_topic knows
            tps = [
                TopicPartition(t, p)
                for t in topics
                for p in sorted(consumer.partitions_for_topic(t) or ())
                if partitions is None or p in partitions
            ]
            if not tps:
                return []
            consumer.assign(tps)
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            for tp in tps:
                start = begin[tp] if tail is None else max(begin[tp], end[tp] - tail)
                consumer.seek(tp, start)
            out: list[Record] = []
            left = {tp for tp in tps if end[tp] > begin[tp]}
            while left:
                batches = await consumer.getmany(*left, timeout_ms=200, max_records=5000)
                for tp, msgs in batches.items():
                    out += [
                        Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                        for m in msgs
                        if m.offset < end[tp]
                    ]
                for tp in list(left):  # by position: compaction leaves gaps in offsets
                    # Or by the high watermark a fetch reported: a restarted Tansu counts
                    # records it stored for a topic before the topic was created again in
                    # its end offset, but its fetches end before them (README Reliability).
                    pos, hw = await consumer.position(tp), consumer.highwater(tp)
                    if pos >= end[tp] or (hw is not None and pos >= hw):
                        left.discard(tp)
            return out
        finally:
            await asyncio.wait_for(consumer.stop(), CLOSE_SECONDS)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # What was handled is committed before the partitions go (bounded), so the next owner
        # starts after it; anything in flight is redelivered to it (at-least-once).
        log.info("group %s: partitions revoked: %s", self.owner.group, sorted(map(str, revoked)))
        await self.owner.flush(CLOSE_SECONDS)
        self.owner.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("group %s: partitions assigned: %s", self.owner.group, sorted(map(str, assigned)))
        self.owner.resume_at(assigned)
        self.owner.assigned.update((tp.topic, tp.partition) for tp in assigned)


class _CommitRefused(Exception):
    """A commit the broker leaves unanswered while it serves this member's fetches."""


def _fetch_answered_since(consumer: AIOKafkaConsumer, since: float) -> bool:
    """Whether the broker answered a fetch for one of our partitions after ``since`` (epoch
    seconds): aiokafka stamps each partition when a fetch response for it arrives, records or
    not, so records it had buffered before do not count."""
    try:
        stamps = [consumer.last_poll_timestamp(tp) for tp in consumer.assignment()]
    except AssertionError:  # a rebalance took a partition between the two calls
        return False
    return any(ms is not None and ms / 1000 > since for ms in stamps)


class KafkaConsumer:
    def __init__(self, bus: KafkaBus, topics: list[str], group: str) -> None:
        self.bus = bus
        self.topics = topics
        self.group = group
        self._consumer: AIOKafkaConsumer | None = None
        self.assigned: set[tuple[str, int]] = set()  # since the last take_assigned()
        self._lost_commits = 0  # commits refused or timed out in a row
        self._pending: dict[TopicPartition, int] = {}  # handled, not yet sent to the broker
        self._committing: asyncio.Task[None] | None = None
        self._rejoin_due = False  # set by the commit task, acted on by the consume loop
        # Where a rejoin goes on from: the offsets after what this member handled. The broker
        # forgot the group's offsets (that is why we rejoin); without these the fresh member
        # would reset to the earliest offset and handle everything since the restart again.
        self._handled: dict[TopicPartition, int] = {}
        self._resume: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bus.bootstrap,
            client_id=f"{self.bus.client_id}-{self.group}",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.bus.session_timeout * 1000),
            # Range gives one member partition p of every topic it reads, so one host's
            # hardware, sensors and market events (all keyed by host id) meet in one decider.
            partition_assignment_strategy=(RangePartitionAssignor,),
            # Members learn of a rebalance (a member gone) at their next heartbeat: a short
            # interval lets a fleet's survivors rejoin together, not up to a second apart.
            heartbeat_interval_ms=max(100, int(self.bus.session_timeout * 1000) // 20),
            fetch_max_wait_ms=max(1, round(self.bus.fetch_max_wait * 1000)),
            **self.bus.security,
        )

        async def start() -> None:
            await consumer.start()
            consumer.subscribe(self.topics, listener=_Listener(self))

        await retry_start(
            f"consumer {self.group}",
            start,
            consumer.stop,
            self.bus.connect_timeout,
            self.bus.bootstrap,
        )
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:  # up: ms; away: bounded, the rest is redelivered
            await self.flush(FLUSH_ON_STOP_SECONDS)
        consumer, self._consumer = self._consumer, None
        self._pending.clear()
        if consumer is not None:
            # Leaving the group needs the broker; a stop must not wait for one that is away.
            try:
                await asyncio.wait_for(consumer.stop(), min(self.bus.send_timeout, CLOSE_SECONDS))
            except (TimeoutError, KafkaError) as exc:
                log.warning("consumer %s did not close cleanly: %r", self.group, exc)

    async def _rejoin(self) -> None:
        """Leave and join the group again. A restarted broker may have forgotten the group
        while our member still holds its old assignment: Tansu then refuses every commit with
        UNKNOWN_TOPIC_OR_PARTITION (not UNKNOWN_MEMBER_ID, which would make aiokafka rejoin),
        so offsets would never be saved again. A fresh member gets a fresh assignment (and
        the service rebuilds its state for it); uncommitted records are redelivered."""
        log.warning("group %s: %d commit(s) refused in a row; joining the group again",
                    self.group, self._lost_commits)  # fmt: skip
        self._lost_commits = 0
        self._resume = dict(self._handled)
        await self.stop()
        # The old aiokafka client (connections, fetcher, coordinator, the futures of its
        # refused commits) is reference cycles: freed now, the fresh client reuses its memory;
        # left to the next collection, the fresh one touches new pages and the resident size
        # steps up (python -m bench restarts; app/garbage.py sweeps what is left).
        gc.collect()
        try:
            await self.start()
        except BusError as exc:  # the next fetch tries again (getmany starts a stopped one)
            raise BusError(f"rejoining group {self.group}: {exc}", retriable=True) from None

    async def _topic_gone(self) -> None:
        log.warning("group %s: a subscribed topic is gone; recreating", self.group)
        await self.bus.recreate_topics()

    async def getmany(self, timeout: float, max_records: int = 500) -> list[Record]:
        if self._consumer is None:  # a rejoin whose start failed: try it again
            try:
                await self.start()
            except BusError as exc:
                raise BusError(str(exc), retriable=True) from None
        assert self._consumer is not None
        try:
            batches = await asyncio.wait_for(
                self._consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records),
                # A (re)join waits for the group's rebalance, seconds on Tansu: bound it by the
                # connect budget, not by the send time-out.
                timeout + self.bus.connect_timeout,
            )
        except UnknownTopicOrPartitionError as exc:
            await self._topic_gone()
            raise bus_error(f"fetch for group {self.group}", exc) from None
        except (TimeoutError, KafkaError) as exc:
            raise bus_error(f"fetch for group {self.group}", exc) from None
        return [
            Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
            for msgs in batches.values()
            for m in msgs
        ]

    def revoked(self, revoked: set[TopicPartition]) -> None:
        self.assigned.difference_update((tp.topic, tp.partition) for tp in revoked)
        for tp in revoked:  # another member goes on from the group's offsets, not ours
            self._handled.pop(tp, None)
            self._pending.pop(tp, None)  # not ours to commit any more (the flush had its go)

    def resume_at(self, assigned: set[TopicPartition]) -> None:
        """After a rejoin, go on where this member left off on the partitions it gets back."""
        consumer, resume, self._resume = self._consumer, self._resume, {}
        if consumer is None:
            return
        for tp in assigned & resume.keys():
            consumer.seek(tp, resume[tp])
        if resume:
            log.info("group %s: rejoined; going on from the handled offsets of %d partition(s)",
                     self.group, len(assigned & resume.keys()))  # fmt: skip

    def take_assigned(self) -> set[tuple[str, int]]:
        taken, self.assigned = self.assigned, set()
        return taken

    async def lag(self) -> dict[tuple[str, int], int]:
        """High watermark (from the last fetch response) minus our position, for the partitions
        assigned now and already fetched from. Best effort and bounded: aiokafka's position()
        waits for the group coordinator when a position is unknown (after a reset, a broker
        pause), and the consume loop asks after every poll, so it must never wait on it."""
        consumer = self._consumer
        if consumer is None:
            return {}
        out: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), LAG_SECONDS)
            except (TimeoutError, KafkaError):
                continue  # unknown for now: the next poll asks again
            out[(tp.topic, tp.partition)] = max(0, high - position)
        return out

    async def commit(self, records: Sequence[Record]) -> None:
        """Queue the offsets after ``records`` and return: a task commits the newest queued
        offsets, one commit at a time. A rejoin the task asked for is done here, in the
        consume loop, where no fetch is in flight."""
        if self._rejoin_due:
            self._rejoin_due = False
            await self.flush(0)
            self._pending.clear()  # redelivered to the fresh member
            await self._rejoin()
            return
        if self._consumer is None:  # between a failed rejoin and the next fetch: redelivered
            return
        for (t, p), o in commit_offsets(records).items():
            tp = TopicPartition(t, p)
            # The newest batch wins, not the highest offset: a topic created again (a broker
            # that lost it) starts its offsets from 0.
            self._pending[tp] = self._handled[tp] = o
        if self._pending and (self._committing is None or self._committing.done()):
            self._committing = asyncio.create_task(self._commit_pending())

    async def flush(self, seconds: float) -> None:
        """Wait at most ``seconds`` for the commit in flight, then commit what is queued."""
        task = self._committing
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=seconds)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return
        if self._pending and self._consumer is not None and seconds > 0:
            self._committing = asyncio.create_task(self._commit_pending())
            await asyncio.wait([self._committing], timeout=seconds)

    async def _commit_pending(self) -> None:
        try:
            while self._pending and self._consumer is not None and not self._rejoin_due:
                offsets, self._pending = self._pending, {}
                await self._commit_once(self._consumer, offsets)
        except Exception:  # no one awaits this task: say what went wrong, redeliver
            log.exception("group %s: commit task failed; records will be redelivered", self.group)

    async def _commit_once(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await asyncio.wait_for(self._commit_unless_refused(consumer, offsets),
                                   self.bus.send_timeout)  # fmt: skip
        except UnknownTopicOrPartitionError as exc:
            # The topic went away under us (Tansu keeps topics in memory; a cluster rebuild or
            # a deleted topic looks the same): create it again so the group can go on.
            log.warning("group %s: commit failed (%r)", self.group, exc)
            await self._topic_gone()
            self._lost_commit()
        except _CommitRefused:
            log.warning("group %s: commit unanswered for %g s while fetches were served: the "
                        "broker has forgotten this member; records will be redelivered",
                        self.group, COMMIT_REFUSED_SECONDS)  # fmt: skip
            self._lost_commit()
            self._rejoin_due = True
        except (TimeoutError, KafkaError) as exc:
            # A rebalance took the partitions (Tansu can also answer UNKNOWN_MEMBER_ID while
            # several members join at once). A real client carries on: the new owner starts at
            # the last committed offset, so these records are processed again, never lost.
            # aiokafka retries an UNKNOWN_TOPIC_OR_PARTITION commit itself until our time-out,
            # so a forgotten group shows here as time-outs: those count toward a rejoin too.
            log.warning(
                "group %s: commit failed (%r); records will be redelivered", self.group, exc
            )
            self._lost_commit()
        else:
            self._lost_commits = 0

    async def _commit_unless_refused(
        self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]
    ) -> None:
        """The commit; _CommitRefused once it has gone unanswered for COMMIT_REFUSED_SECONDS
        while the broker answered this member's fetches. The broker is then up and refusing it:
        a restarted one that forgot this member. aiokafka would retry it every 100 ms until the
        caller's time-out, each retry leaving a cycle of garbage (app/garbage.py)."""
        sent = time.time()  # aiokafka stamps fetch responses with the wall clock
        commit = asyncio.ensure_future(consumer.commit(offsets))
        try:
            while not (await asyncio.wait({commit}, timeout=COMMIT_REFUSED_SECONDS))[0]:
                if _fetch_answered_since(consumer, sent):
                    raise _CommitRefused
            commit.result()
        finally:
            if not commit.done():
                commit.cancel()
                await asyncio.gather(commit, return_exceptions=True)

    def _lost_commit(self) -> None:
        self._lost_commits += 1
        if self._lost_commits >= REJOIN_AFTER_LOST_COMMITS:
            self._rejoin_due = True
