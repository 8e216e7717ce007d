"""Which hosts a decider tracks: an allowlist of host ids and globs (``--hosts``).

Host ids come from the bus, so anyone who can write to an input topic chooses them; the
allowlist is what bounds them when observers do not sign their hardware records.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

GLOB_CHARS = frozenset("*?[")
MAX_PATTERNS = 10_000  # a fleet's host list, not a registry dump


class HostFilterError(ValueError):
    """A list that does not describe hosts: one line saying why."""


@dataclass(frozen=True)
class HostFilter:
    """Exact host ids, looked up in a set, and glob patterns (fnmatch, case-sensitive)."""

    exact: frozenset[str]
    globs: tuple[str, ...]

    def allows(self, host_id: str) -> bool:
        return host_id in self.exact or any(fnmatchcase(host_id, g) for g in self.globs)

    @property
    def everything(self) -> bool:
        return "*" in self.globs

    def describe(self) -> str:
        shown = sorted(self.exact) + list(self.globs)
        more = f" (+{len(shown) - 5} more)" if len(shown) > 5 else ""
        return ", ".join(shown[:5]) + more


def only(host_id: str) -> HostFilter:
    return HostFilter(frozenset([host_id]), ())


def parse_hosts(text: str) -> HostFilter:
    """Patterns separated by commas or newlines; blanks and ``#`` comments are ignored."""
    items: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        items += [p.strip() for p in line.split(",") if p.strip()]
    if not items:
        raise HostFilterError("no host or pattern given")
    if len(items) > MAX_PATTERNS:
        raise HostFilterError(f"{len(items)} patterns, more than {MAX_PATTERNS}")
    for p in items:
        if len(p) > 253 or any(c.isspace() for c in p):
            raise HostFilterError(f"not a host id or glob: {p[:64]!r}")
    globs = tuple(dict.fromkeys(p for p in items if GLOB_CHARS & set(p)))
    return HostFilter(frozenset(p for p in items if not GLOB_CHARS & set(p)), globs)
