"""A trading engine that uses QAS over Kafka, the way a user integrates it.

The engine publishes what it sees of the market (ticks, and its own entropy and profit
estimates) and subscribes to `qas.decisions`, adopting the batch size and precision tier as
they change. Run QAS beside it (`qas run --bootstrap-servers HOST:PORT`), then:

    python examples/trading_engine.py --bootstrap-servers HOST:PORT --duration 30

It reads prices from the sample shipped with QAS; a real engine would use its own feed.

Security: given the key file the decider signs with (--signing-key-file, or
QAS_SIGNING_KEY_FILE), the engine adopts only decisions whose signature verifies; without it,
it says once that it runs unverified. The broker connection takes the same TLS/SASL settings
as `qas` (--security-protocol, --ssl-*, --sasl-*, the password from QAS_SASL_PASSWORD or
--sasl-password-file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.keys import load_key_file
from services.bus.security import MECHANISMS, PROTOCOLS, BrokerSecurity, sasl_password
from shared.csvseries import read_series
from shared.data import SAMPLE
from shared.market import StreamingEstimator
from shared.messages import InvalidMessage, ScalingDecision, decode
from shared.signing import KeyRing, verify

log = logging.getLogger("engine")


class Engine:
    """The trading side: it only needs to know the JSON on the topics."""

    def __init__(
        self,
        bootstrap: str,
        host_id: str,
        keys: KeyRing | None = None,
        security: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap, self.host_id = bootstrap, host_id
        self.batch_size = 256
        self.precision = "float64"
        self.adopted: list[dict[str, object]] = []
        self.keys = keys  # the decider's key file: adopt only what it signed
        self.security = security or {}  # TLS/SASL kwargs for every Kafka client
        self.refused = 0

    def accept(self, raw: bytes) -> dict[str, Any] | None:
        """The decision to act on, or None: another host's, unsure, or (with keys) unverified."""
        d = json.loads(raw)
        if d.get("host_id") != self.host_id or d.get("confidence", 0) <= 0.7:
            return None  # another host's decision, or one QAS itself would not apply
        if self.keys is not None:
            fault: tuple[str, str] | None
            try:
                fault = verify(decode(raw, ScalingDecision), self.keys)
            except InvalidMessage as exc:
                fault = ("invalid", str(exc))
            if fault is not None:
                self.refused += 1
                log.warning("refused decision %.80r: %s", d.get("decision_id"), fault[1])
                return None
        return dict(d)

    def _event(self, **fields: object) -> bytes:
        return json.dumps({"event_time": time.time(), "host_id": self.host_id, **fields}).encode()

    async def publish_market(
        self, producer: AIOKafkaProducer, stop: asyncio.Event, rate: float
    ) -> int:
        prices = read_series(SAMPLE).prices
        estimator = StreamingEstimator()  # the engine's own estimate; QAS could derive it too
        key = self.host_id.encode()
        sent = 0
        for price in prices.tolist():
            if stop.is_set():
                break
            await producer.send_and_wait(
                "market.ticks", self._event(symbol="SPX", price=price), key=key
            )
            estimate = estimator.update(price)
            if estimate is not None:
                entropy, profit = estimate.entropy, estimate.profit
                await producer.send_and_wait("market.entropy", self._event(value=entropy), key=key)
                await producer.send_and_wait("market.profit", self._event(value=profit), key=key)
            # the engine's real work would go here, in batches of self.batch_size
            sent += 1
            await asyncio.sleep(1.0 / rate)
        return sent

    async def follow_decisions(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            "qas.decisions", bootstrap_servers=self.bootstrap, group_id=f"engine-{self.host_id}",
            auto_offset_reset="latest", enable_auto_commit=True, **self.security,
        )  # fmt: skip
        if self.keys is None:
            log.warning("decisions are not verified (no --signing-key-file): any client that "
                        "can write to qas.decisions can change this engine's settings")  # fmt: skip
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for msg in (m for msgs in batch.values() for m in msgs):
                    d = self.accept(msg.value)
                    if d is None:
                        continue
                    if (d["batch_size"], d["precision_tier"]) != (self.batch_size, self.precision):
                        self.batch_size, self.precision = d["batch_size"], d["precision_tier"]
                        self.adopted.append(d)
                        log.info("adopted batch %d, precision %s (factor %.2f): %s", self.batch_size,
                                 self.precision, d["scaling_factor"], " ".join(d["reasons"]))  # fmt: skip
        finally:
            await consumer.stop()


async def run(bootstrap: str, duration: float, rate: float, host_id: str,
              keys: KeyRing | None = None, security: dict[str, Any] | None = None) -> Engine:  # fmt: skip
    engine = Engine(bootstrap, host_id, keys, security)
    stop = asyncio.Event()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **engine.security)
    await producer.start()
    try:
        follower = asyncio.create_task(engine.follow_decisions(stop))
        await asyncio.sleep(0.5)
        market = asyncio.create_task(engine.publish_market(producer, stop, rate))
        await asyncio.sleep(duration)
        stop.set()
        await asyncio.gather(follower, market)
    finally:
        await producer.stop()
    return engine


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--bootstrap-servers", required=True, metavar="HOST:PORT")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to trade (default 30)")
    p.add_argument("--rate", type=float, default=50.0, help="ticks per second (default 50)")
    p.add_argument("--host-id", default=socket.gethostname(), help="must match QAS's --host-id")
    env = os.environ.get
    p.add_argument("--signing-key-file", type=Path, default=env("QAS_SIGNING_KEY_FILE"),
                   help="the decider's key file: adopt only decisions it signed")  # fmt: skip
    p.add_argument("--security-protocol", choices=PROTOCOLS,
                   default=env("QAS_SECURITY_PROTOCOL", "PLAINTEXT"))  # fmt: skip
    for name in ("ssl-cafile", "ssl-certfile", "ssl-keyfile", "sasl-password-file"):
        p.add_argument(f"--{name}", type=Path,
                       default=env(f"QAS_{name.upper().replace('-', '_')}"))  # fmt: skip
    p.add_argument("--sasl-mechanism", choices=MECHANISMS, default=env("QAS_SASL_MECHANISM"))
    p.add_argument("--sasl-username", default=env("QAS_SASL_USERNAME"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    keys = load_key_file(args.signing_key_file) if args.signing_key_file else None
    security = BrokerSecurity(
        args.security_protocol, ssl_cafile=args.ssl_cafile, ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile, sasl_mechanism=args.sasl_mechanism,
        sasl_username=args.sasl_username, sasl_password=sasl_password(args.sasl_password_file),
    ).client_kwargs()  # fmt: skip
    engine = asyncio.run(run(args.bootstrap_servers, args.duration, args.rate, args.host_id,
                             keys, security))  # fmt: skip
    print(f"adopted {len(engine.adopted)} configurations; final batch {engine.batch_size}, "
          f"precision {engine.precision}; refused {engine.refused} unverified")  # fmt: skip


if __name__ == "__main__":
    main()
