"""The applier's state file (``--state-dir``): its replay watermarks, kept across restarts.

Written after a decision is enacted and before it is acknowledged, atomically: a temporary file
in the same directory, fsynced, renamed over the old one, and the directory fsynced, so a crash
leaves either the old file or the new one, never a torn one. The bytes are shared/watermarks.py's.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from shared.freshness import Watermark
from shared.watermarks import CorruptState, decode_state, encode_state

log = logging.getLogger("qas.applier")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Loaded:
    """What a start found: the watermarks, or why there are none (``problem``)."""

    marks: dict[str, Watermark]
    problem: str | None = None


class StateFile:
    """One applier's state file, ``<dir>/applier-<host id>.json``."""

    def __init__(self, directory: Path, host_id: str) -> None:
        self.directory = directory
        self.path = directory / f"applier-{_UNSAFE.sub('_', host_id)[:200]}.json"

    def load(self) -> Loaded:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Loaded({}, f"no state file {self.path} (a first start, or it was removed)")
        except OSError as exc:
            return Loaded({}, f"cannot read state file {self.path}: {exc.strerror or exc}")
        try:
            return Loaded(decode_state(data))
        except CorruptState as exc:
            return Loaded({}, f"state file {self.path} is corrupt: {exc}")

    def write(self, marks: dict[str, Watermark]) -> None:
        """Replace the file with ``marks``, durably (raises OSError: then nothing is acked)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(encode_state(marks))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename itself survives a power cut
        finally:
            os.close(dfd)
