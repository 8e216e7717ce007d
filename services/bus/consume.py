"""The one consume loop every service uses: decode, route, dead-letter, commit.

A record that fails to decode, or whose handler raises, goes to the DLQ topic with its original
bytes, topic/partition/offset and the reason; it is counted and the loop moves on. The batch is
committed (last offset + 1 per partition) only after every record in it was handled or
dead-lettered, so a crash or a stop mid-batch redelivers instead of losing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.bus.base import Bus, BusError, Consumer, Record
from shared.messages import DeadLetter, InvalidMessage, decode, encode

log = logging.getLogger("qas.consume")


@dataclass(frozen=True)
class Route:
    kind: type[msgspec.Struct]
    handle: Callable[[Any], Awaitable[None]]
    decoder: msgspec.json.Decoder[Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", msgspec.json.Decoder(self.kind))


async def publish_retrying(
    bus: Bus, topic: str, key: str, value: bytes, stop: asyncio.Event, what: str = ""
) -> None:
    """Publish, retrying with backoff while the broker is away; gives up only on stop."""
    delay = 0.2
    while True:
        try:
            await bus.publish(topic, key, value)
            return
        except BusError as exc:
            if stop.is_set():
                raise
            log.warning("publish %s to %s failed (%s); retrying in %.1f s", what, topic, exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(5.0, delay * 2)


async def dead_letter(
    bus: Bus,
    record: Record,
    reason: str,
    *,
    dlq_topic: str,
    host_id: str,
    service: str,
    stop: asyncio.Event,
    stats: Counter[str],
) -> None:
    stats["dead_letters"] += 1
    log.warning(
        "dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
    )
    letter = DeadLetter(
        event_time=time.time(),
        host_id=host_id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason[:2000],
        payload=record.value,
        key=record.key,
        service=service,
    )
    await publish_retrying(bus, dlq_topic, host_id, encode(letter), stop, "dead letter")


async def consume(
    bus: Bus,
    consumer: Consumer,
    routes: dict[str, Route],
    *,
    stop: asyncio.Event,
    dlq_topic: str,
    host_id: str,
    service: str,
    stats: Counter[str],
    poll_seconds: float = 0.2,
) -> None:
    """Run until ``stop`` is set; the caller starts and stops the consumer."""
    while not stop.is_set():
        records = await consumer.getmany(timeout=poll_seconds)
        for record in records:
            route = routes.get(record.topic)
            if route is None:
                continue
            try:
                msg = decode(record.value, route.kind, route.decoder)
            except InvalidMessage as exc:
                await dead_letter(
                    bus,
                    record,
                    f"undecodable: {exc}",
                    dlq_topic=dlq_topic,
                    host_id=host_id,
                    service=service,
                    stop=stop,
                    stats=stats,
                )
                continue
            try:
                await route.handle(msg)
            except BusError:
                raise
            except Exception as exc:  # a bug or bad value in one record must not stop the service
                log.exception("%s: handler for %s failed", service, record.topic)
                await dead_letter(
                    bus,
                    record,
                    f"handler failed: {exc!r}",
                    dlq_topic=dlq_topic,
                    host_id=host_id,
                    service=service,
                    stop=stop,
                    stats=stats,
                )
                continue
            stats[f"consumed:{record.topic}"] += 1
        if records:
            await consumer.commit(records)


async def serve(
    bus: Bus,
    routes: dict[str, Route],
    group: str,
    *,
    stop: asyncio.Event,
    dlq_topic: str,
    host_id: str,
    service: str,
    stats: Counter[str],
) -> None:
    """A service's whole consuming life: join the group, consume until stop, leave cleanly."""
    consumer = bus.consumer(list(routes), group)
    await consumer.start()
    try:
        await consume(bus, consumer, routes, stop=stop, dlq_topic=dlq_topic, host_id=host_id,
                      service=service, stats=stats)  # fmt: skip
    finally:
        await consumer.stop()
