"""Events for hosts the decider does not track: counted, a few held, and a rate-limited warning.

A host is tracked once a valid ``qas.hardware`` record for it arrived (and the ``--hosts``
allowlist, if any, names it). Until then its inputs cost no per-host state: the latest input of
each kind is held for at most ``PENDING`` (host, topic) pairs, oldest dropped first, so a real
host whose sensors overtook its hardware record still has them at its first decision; the rest
are only counted.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("qas.decider")

PENDING = 64  # (host, topic) pairs held; each input is one small message (a few KB at most)
WARN_INTERVAL_SECONDS = 60.0  # at most one warning a minute
WARN_EVENTS = 60  # unknown-host events in a minute (one a second) that warrant one
EXAMPLES = 3  # host ids named in a warning


class UnknownHosts:
    """Holds and counts inputs of untracked hosts; says when an operator should hear of it."""

    def __init__(self, clock: Callable[[], float], *, pending: int = PENDING) -> None:
        self.clock = clock
        self.limit = pending
        self.pending: OrderedDict[tuple[str, str], Any] = OrderedDict()
        # The rate: unknown-host events since the start of the current minute.
        self._window_start: float | None = None
        self._recent = 0
        # What the next warning reports: counts since the last one (or the start).
        self._last_warning: float | None = None
        self._since = clock()
        self._unknown: Counter[str] = Counter()  # topic -> events of hosts with no hardware
        self._refused = 0  # events of hosts the allowlist leaves out
        self._evicted = 0
        self._examples: list[str] = []
        self.warnings = 0

    def hold(self, host_id: str, topic: str, msg: Any) -> None:
        """The newest input of this kind for an untracked host, until its hardware arrives."""
        key = (host_id, topic)
        self.pending.pop(key, None)
        self.pending[key] = msg
        while len(self.pending) > self.limit:
            self.pending.popitem(last=False)

    def release(self, host_id: str) -> list[tuple[str, Any]]:
        """The held inputs of a host that is now tracked, oldest first."""
        out = [(topic, msg) for (host, topic), msg in self.pending.items() if host == host_id]
        for topic, _ in out:
            del self.pending[(host_id, topic)]
        return out

    def forget(self, host_id: str) -> None:
        for key in [k for k in self.pending if k[0] == host_id]:
            del self.pending[key]

    def unknown(self, host_id: str, topic: str) -> None:
        self._roll()
        self._recent += 1
        self._unknown[topic] += 1
        if len(self._examples) < EXAMPLES and host_id not in self._examples:
            self._examples.append(host_id[:64])
        self._maybe_warn()

    def refused(self) -> None:
        """An event of a host left out by the allowlist: reported, but never a reason to warn
        (a decider given a few hosts of a fleet sees the others' traffic all the time)."""
        self._refused += 1

    def evicted(self, count: int = 1) -> None:
        self._evicted += count
        self._maybe_warn()

    def _roll(self) -> None:
        """A minute passed without a warning: start counting the next one afresh."""
        now = self.clock()
        if self._window_start is None or now - self._window_start >= WARN_INTERVAL_SECONDS:
            self._window_start = now
            self._recent = 0

    def _maybe_warn(self) -> None:
        now = self.clock()
        if self._recent < WARN_EVENTS and not self._evicted:
            return
        if self._last_warning is not None and now - self._last_warning < WARN_INTERVAL_SECONDS:
            return
        self._last_warning = now
        self.warnings += 1
        per_topic = ", ".join(f"{t} {n}" for t, n in sorted(self._unknown.items())) or "none"
        log.warning(
            "inputs for hosts without a hardware record in the last %.0f s: %s (e.g. %s), "
            "not tracked; %d host(s) evicted at the max_tracked_hosts cap; %d event(s) of hosts "
            "outside --hosts. A writer on the input topics may be inventing hosts: set --hosts "
            "(docs/reliability.md)",
            now - self._since, per_topic,
            ", ".join(repr(h) for h in self._examples) or "-", self._evicted, self._refused,
        )  # fmt: skip
        self._since = self._window_start = now
        self._recent = 0
        self._unknown.clear()
        self._refused = self._evicted = 0
        self._examples.clear()
