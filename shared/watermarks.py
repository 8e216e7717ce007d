"""The applier's replay watermarks as bytes: the highest ``(sequence_epoch, sequence)`` enacted
per host, the content of its state file (services/applier/state.py writes it).

Versioned JSON (``{"version": 1, "hosts": {host: {"epoch": .., "sequence": ..}}}``). Anything
else (not JSON, a newer version, a wrong type, a negative number) is :class:`CorruptState`, never
a guess: the caller falls back to its strict start.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from shared.freshness import Watermark

STATE_VERSION: Final = 1
_MAX_HOSTS: Final = 100_000  # an applier enacts for its own host; a file this big is not ours


class CorruptState(ValueError):
    """A state file that cannot be trusted, with why (never its content)."""


class _Mark(Struct, frozen=True):
    epoch: Annotated[int, Meta(ge=0)]
    sequence: Annotated[int, Meta(ge=0)]


class _State(Struct, frozen=True):
    version: Annotated[int, Meta(ge=1)]
    hosts: dict[str, _Mark]


_decoder = msgspec.json.Decoder(_State)


def encode_state(marks: dict[str, Watermark]) -> bytes:
    hosts = {h: _Mark(w.epoch, w.sequence) for h, w in sorted(marks.items())}
    return msgspec.json.encode(_State(STATE_VERSION, hosts)) + b"\n"


def decode_state(data: bytes) -> dict[str, Watermark]:
    try:
        state = _decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptState(f"not a watermark state file ({str(exc)[:200]})") from None
    if state.version != STATE_VERSION:
        raise CorruptState(f"state version {state.version}, this applier knows {STATE_VERSION}")
    if len(state.hosts) > _MAX_HOSTS:
        raise CorruptState(f"{len(state.hosts)} hosts (at most {_MAX_HOSTS})")
    return {h: Watermark(m.epoch, m.sequence) for h, m in state.hosts.items()}


def newer(a: Watermark | None, b: Watermark) -> Watermark:
    """The higher of two watermarks (``a`` None: none known yet)."""
    if a is None:
        return b
    return max(a, b, key=lambda w: (w.epoch, w.sequence))
