"""Logging for the CLI: one format on stderr, and the Kafka client's own chatter kept out of it.

aiokafka logs every failed connection attempt (WARNING/ERROR, about eleven lines before QAS's
own one-line "cannot reach Kafka" error) and, on Tansu, an ERROR for the InitProducerId request
that QAS then explains in a single WARNING (``services.bus.kafka``). Those records are QAS's to
explain, so every aiokafka record is lowered to DEBUG: shown only with ``--log-level DEBUG``,
never as an ERROR on a normal start.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
CLIENT_LOGGERS = ("aiokafka", "kafka")


class ClientNoise(logging.Filter):
    """Lower the Kafka client's records to DEBUG; drop them unless the handler shows DEBUG."""

    def __init__(self, show: bool) -> None:
        super().__init__()
        self.show = show

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] not in CLIENT_LOGGERS:
            return True
        if record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.show


def setup(level: str | int) -> None:
    """Configure the root logger on stderr at ``level`` with the client noise filter."""
    root = logging.getLogger()
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT)
    debug = root.getEffectiveLevel() <= logging.DEBUG
    for handler in root.handlers:
        if not any(isinstance(f, ClientNoise) for f in handler.filters):
            handler.addFilter(ClientNoise(show=debug))
    for name in CLIENT_LOGGERS:
        # below DEBUG nothing is formatted at all; with DEBUG every record reaches the filter
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)
