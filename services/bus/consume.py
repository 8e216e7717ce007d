"""The one consume loop every service uses: decode, route, dead-letter, commit.

A record that fails to decode, or whose handler raises, goes to the DLQ topic with its original
bytes, topic/partition/offset and the reason; it is counted and the loop moves on. The batch is
committed (last offset + 1 per partition) only after every record in it was handled or
dead-lettered, so a crash or a stop mid-batch redelivers instead of losing. A retriable broker
error (fetch or commit) backs off and tries again; a fatal one ends the loop with its message.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.bus.base import Bus, BusError, Consumer, Record
from shared.bounds import dead_letter_payload, refusal
from shared.messages import DeadLetter, InvalidMessage, decode, encode

log = logging.getLogger("qas.consume")

MAX_BACKOFF_SECONDS = 5.0
# A dead letter the broker refuses this many times is logged, counted and skipped: one record
# must never stop its partition (the batch is committed past it).
DEAD_LETTER_TRIES = 5
FIRST_BACKOFF_SECONDS = 0.2
LAG_REFRESH_SECONDS = 1.0  # consumer lag for /metrics is read at most this often
MAX_KEY_BYTES = 1024
# Called with the (topic, partition)s newly assigned to this consumer.
OnAssigned = Callable[[set[tuple[str, int]]], Awaitable[None]]
# The lowest offset per (topic, partition) a service still works on after its handler returned
# (an applier's decision waiting out its jitter): commits stop there, so a crash redelivers it.
Held = Callable[[], Mapping[tuple[str, int], int]]
# The record being handled, for a handler that keeps working on it after it returns.
CURRENT_RECORD: contextvars.ContextVar[Record | None] = contextvars.ContextVar(
    "qas_current_record", default=None
)


class Rejected(Exception):
    """Raised by a handler that refused a record on purpose (e.g. a forged decision): the record
    goes to the DLQ with this reason, without the traceback a failing handler gets."""


@dataclass(frozen=True)
class Subscriber:
    """Who consumes, and how: one object instead of loose keyword arguments."""

    group: str
    service: str
    host_id: str
    dlq_topic: str
    poll_seconds: float = 0.2
    max_records: int = 500


@dataclass(frozen=True)
class Route:
    kind: type[msgspec.Struct]
    handle: Callable[[Any], Awaitable[None]]
    decoder: msgspec.json.Decoder[Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", msgspec.json.Decoder(self.kind))


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once on stop."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def publish_retrying(
    bus: Bus,
    topic: str,
    key: str,
    value: bytes,
    stop: asyncio.Event,
    what: str = "",
    *,
    within: float | None = None,
) -> bool:
    """Publish, retrying with backoff while the broker is away. Gives up on stop (raising the
    last BusError) or, with ``within``, once that many seconds have passed (returning False:
    a record that is worthless by then, such as a decision past the applier's age limit)."""
    delay = 0.2
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    while True:
        try:
            await bus.publish(topic, key, value)
            return True
        except BusError as exc:
            if stop.is_set():
                raise
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                log.warning("publish %s to %s failed (%s); given up after %g s",
                            what, topic, exc, within)  # fmt: skip
                return False
            wait = delay if left is None else min(delay, left)
            log.warning("publish %s to %s failed (%s); retrying in %.1f s", what, topic, exc, wait)
            await _pause(stop, wait)
            delay = min(MAX_BACKOFF_SECONDS, delay * 2)


async def publish_bounded(
    bus: Bus, topic: str, key: str, value: bytes, stop: asyncio.Event, what: str, tries: int
) -> bool:
    """Publish with backoff at most ``tries`` times; False when every try failed. Raises the
    last BusError only when stop is set (the record is then redelivered, not skipped)."""
    delay = FIRST_BACKOFF_SECONDS
    for attempt in range(1, tries + 1):
        try:
            await bus.publish(topic, key, value)
            return True
        except BusError as exc:
            if stop.is_set():
                raise
            log.warning("publish %s to %s failed (try %d/%d): %s", what, topic, attempt, tries, exc)
            if attempt < tries:
                await _pause(stop, delay)
                delay = min(MAX_BACKOFF_SECONDS, delay * 2)
    return False


async def dead_letter(
    bus: Bus,
    record: Record,
    reason: str,
    sub: Subscriber,
    *,
    stop: asyncio.Event,
    stats: Counter[str],
) -> None:
    stats["dead_letters"] += 1
    log.warning(
        "dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason[:500]
    )
    payload, size, sha256 = dead_letter_payload(record.value)
    whole = size == len(payload)
    letter = DeadLetter(
        event_time=time.time(),
        host_id=sub.host_id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason[:2000],
        payload=payload,
        key=None if record.key is None else record.key[:MAX_KEY_BYTES],
        service=sub.service,
        size=0 if whole else size,
        sha256="" if whole else sha256,
    )
    sent = await publish_bounded(
        bus, sub.dlq_topic, sub.host_id, encode(letter), stop, "dead letter", DEAD_LETTER_TRIES
    )
    if not sent:
        stats["dead_letters_dropped"] += 1
        log.error(
            "dead letter for %s[%d]@%d not accepted after %d tries; skipped (sha256 %s)",
            record.topic, record.partition, record.offset, DEAD_LETTER_TRIES, sha256,
        )  # fmt: skip


async def _handle(
    bus: Bus,
    record: Record,
    route: Route,
    sub: Subscriber,
    stop: asyncio.Event,
    stats: Counter[str],
) -> None:
    why = refusal(record.value)
    if why:
        await dead_letter(bus, record, f"refused: {why}", sub, stop=stop, stats=stats)
        return
    try:
        msg = decode(record.value, route.kind, route.decoder)
    except InvalidMessage as exc:
        await dead_letter(bus, record, f"undecodable: {exc}", sub, stop=stop, stats=stats)
        return
    except Exception as exc:  # UnicodeDecodeError, RecursionError, ...: still this record's
        await dead_letter(bus, record, f"undecodable: {exc!r}", sub, stop=stop, stats=stats)
        return
    token = CURRENT_RECORD.set(record)
    try:
        await route.handle(msg)
    except BusError:
        raise
    except Rejected as exc:
        await dead_letter(bus, record, f"rejected: {exc}", sub, stop=stop, stats=stats)
        return
    except Exception as exc:  # a bug or bad value in one record must not stop the service
        log.exception("%s: handler for %s failed", sub.service, record.topic)
        await dead_letter(bus, record, f"handler failed: {exc!r}", sub, stop=stop, stats=stats)
        return
    finally:
        CURRENT_RECORD.reset(token)
    stats[f"consumed:{record.topic}"] += 1


async def consume(
    bus: Bus,
    consumer: Consumer,
    routes: dict[str, Route],
    sub: Subscriber,
    *,
    stop: asyncio.Event,
    stats: Counter[str],
    on_batch: Callable[[], Awaitable[None]] | None = None,
    lag: dict[tuple[str, int], int] | None = None,
    on_assigned: OnAssigned | None = None,
    on_handled: Callable[[], Awaitable[None]] | None = None,
    held: Held | None = None,
) -> None:
    """Run until ``stop`` is set; the caller starts and stops the consumer. ``lag`` is
    refreshed after a poll at most every LAG_REFRESH_SECONDS (records behind per topic and
    partition, for /metrics, scraped every 15 s: asking after every poll cost a position
    look-up per partition on the hot path).
    ``on_handled`` runs after every record of a batch was handled and before its commit (work
    a service does once per batch); only a BusError may leave it (the batch is redelivered).
    ``held`` names records still being worked on: nothing from them on is committed yet.
    ``on_assigned`` sees every newly assigned partition before any of its records is handled
    (a start, a restart, a takeover); it must not raise: the batch in hand is not re-fetched."""
    delay = 0.2
    loop, lag_due = asyncio.get_running_loop(), 0.0
    while not stop.is_set():
        try:
            records = await consumer.getmany(sub.poll_seconds, sub.max_records)
            assigned = consumer.take_assigned()
            if assigned and on_assigned is not None:
                await on_assigned(assigned)
            if lag is not None and loop.time() >= lag_due:
                lag.update(await consumer.lag())
                lag_due = loop.time() + LAG_REFRESH_SECONDS
            for record in records:
                route = routes.get(record.topic)
                if route is not None:
                    await _handle(bus, record, route, sub, stop, stats)
                stats[f"handled:{record.topic}"] += 1
            if records and on_handled is not None:
                await on_handled()
            if records:
                await consumer.commit(_below(records, held() if held is not None else {}))
        except BusError as exc:
            if stop.is_set():  # stopping: what was not committed is redelivered, not lost
                log.info("%s: stopping with the broker unavailable (%s)", sub.service, exc)
                return
            if not exc.retriable:
                raise
            stats["broker_retries"] += 1
            log.warning("%s: %s; retrying in %.1f s", sub.service, exc, delay)
            await _pause(stop, delay)
            delay = min(MAX_BACKOFF_SECONDS, delay * 2)
            continue
        delay = 0.2
        if records and on_batch is not None:
            await on_batch()


def _below(records: list[Record], held: Mapping[tuple[str, int], int]) -> list[Record]:
    """The records that may be committed: on a partition with a held offset, those before it
    (commit_offsets then commits up to the held record, not past it)."""
    if not held:
        return records
    return [r for r in records if r.offset < held.get((r.topic, r.partition), r.offset + 1)]


async def serve(
    bus: Bus,
    routes: dict[str, Route],
    sub: Subscriber,
    *,
    stop: asyncio.Event,
    stats: Counter[str],
    on_batch: Callable[[], Awaitable[None]] | None = None,
    lag: dict[tuple[str, int], int] | None = None,
    on_assigned: OnAssigned | None = None,
    on_handled: Callable[[], Awaitable[None]] | None = None,
    held: Held | None = None,
) -> None:
    """A service's whole consuming life: join the group, consume until stop, leave cleanly."""
    consumer = bus.consumer(list(routes), sub.group)
    await consumer.start()
    try:
        await consume(
            bus, consumer, routes, sub, stop=stop, stats=stats, on_batch=on_batch, lag=lag,
            on_assigned=on_assigned, on_handled=on_handled, held=held,
        )  # fmt: skip
    finally:
        await consumer.stop()
