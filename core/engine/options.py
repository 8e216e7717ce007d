"""The engine client's options, declared once: name, type, allowed range, default, meaning.

``check`` validates the options a constructor was given against ``OPTIONS`` and raises
``ClientOptionError`` (a ``ValueError`` and a ``TypeError``) with one line naming the option and
what it allows, so a bad value fails at construction instead of killing a background task later.
``markdown_table`` renders the same declaration for docs/engine.md (a test keeps them equal).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.tiers import ALL_BITS


class ClientOptionError(ValueError, TypeError):
    """A bad option given to the engine client or its store: one line naming the option."""


@dataclass(frozen=True)
class Option:
    """One option: ``kind`` is "float", "int", "str", "bool", "tier" or "callable"."""

    name: str
    kind: str
    low: float | None = None  # inclusive unless ``low_open``
    high: float | None = None  # inclusive
    low_open: bool = False
    optional: bool = False  # None is accepted (and means what ``default`` says)
    default: str = ""
    meaning: str = ""
    where: tuple[str, ...] = ("EngineClient", "connect", "BackgroundClient")

    def allowed(self) -> str:
        """The allowed range in words, as errors and the docs show it."""
        if self.kind == "tier":
            text = "one of " + ", ".join(str(b) for b in ALL_BITS)
        elif self.kind in ("float", "int"):
            noun = "a finite number" if self.kind == "float" else "a whole number"
            lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {_num(self.low)}"
            hi = "" if self.high is None else f"<= {_num(self.high)}"
            text = noun + (" " if lo or hi else "") + ", ".join(p for p in (lo, hi) if p)
        elif self.kind == "str":
            text = "a non-empty string"
        elif self.kind == "bool":
            text = "True or False"
        else:
            text = "a callable"
        return text + (" or None" if self.optional else "")

    def check(self, value: Any) -> None:
        if value is None and self.optional:
            return
        if not self._ok(value):
            raise ClientOptionError(f"{self.name}={value!r}: must be {self.allowed()}")

    def _ok(self, v: Any) -> bool:
        if self.kind == "callable":
            return callable(v)
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "str":
            return isinstance(v, str) and v != ""
        if isinstance(v, bool):  # True is an int to Python, never a size or a duration here
            return False
        if self.kind == "tier":
            return isinstance(v, numbers.Integral) and int(v) in ALL_BITS
        if self.kind == "int" and not isinstance(v, numbers.Integral):
            return False
        if self.kind == "float" and not isinstance(v, numbers.Real):
            return False
        x = float(v)
        if not math.isfinite(x):
            return False
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return self.high is None or x <= self.high


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


_CLIENT = ("EngineClient", "connect", "BackgroundClient")
_CONNECT = ("connect", "BackgroundClient")
_STORE = ("EngineStore",)

OPTIONS: tuple[Option, ...] = (
    Option("latency_objective_ms", "float", 0.0, 3_600_000.0, low_open=True, default="25.0",
           meaning="the engine's per-batch latency objective, in milliseconds"),
    Option("memory_limit_bytes", "int", 1, None, optional=True, default="None",
           meaning="a memory limit the engine declares, in bytes (None: its cgroup's only)"),
    Option("store_budget_bytes", "int", 1, None, default="67108864",
           meaning="the store's budget until the first decision sets one, in bytes"),
    Option("max_store_bytes", "int", 1, None, optional=True, default="None",
           meaning="a cap on any budget a decision gives the store (None: the decision's)"),
    Option("memory_target", "float", 0.5, 0.94, default="0.9",
           meaning="the memory controller's predicted peak, a share of the limit (band +-0.05)"),
    Option("memory_horizon_seconds", "float", 0.0, 3600.0, default="5.0",
           meaning="how far ahead the memory controller predicts growth (at least 2 intervals)"),
    Option("memory_reader", "callable", optional=True, default="None",
           meaning="reads the engine's memory (None: its own cgroup and RSS), for tests"),
    Option("batch_size", "int", 1, 1 << 24, optional=True, default="None",
           meaning="the engine's configured batch: where the sizer starts, the most a decision "
           "gives it (None: starts at 256, the decider's memory plan bounds it)"),
    Option("min_batch_size", "int", 1, 1 << 24, default="1",
           meaning="the smallest batch the engine runs: decisions go no lower"),
    Option("max_batch_size", "int", 1, 1 << 24, optional=True, default="None",
           meaning="the largest batch the engine runs (None: 1048576)"),
    Option("feedback_interval_seconds", "float", 0.01, 3600.0, default="1.0",
           meaning="how often a feedback report is published (when a batch was recorded)"),
    Option("stale_after_seconds", "float", 0.0, None, low_open=True, default="120.0",
           meaning="a decision older than this is flagged stale in `current`"),
    Option("adopted_kept", "int", 1, 1_000_000, default="256",
           meaning="how many adopted decisions `adopted` keeps (the newest)"),
    Option("reports_kept", "int", 1, 1_000_000, default="256",
           meaning="how many feedback reports `reports` keeps (the newest)"),
    Option("host_id", "str", optional=True, default="the hostname",
           meaning="the host the engine's decisions are for"),
    Option("clock", "callable", default="time.time", where=(*_CLIENT, *_STORE),
           meaning="the clock (seconds), for tests"),
    Option("verify", "callable", optional=True, default="None",
           meaning="a hook refusing unverified decisions (connect sets one from `keys`)"),
    Option("bootstrap_servers", "str", optional=True, default="None", where=_CONNECT,
           meaning="Kafka brokers; None: an in-process bus with QAS embedded"),
    Option("embedded_qas", "bool", optional=True, default="None", where=_CONNECT,
           meaning="run QAS's observer and decider in-process (None: when the bus is in-process)"),
    Option("thermal_source", "callable", optional=True, default="None", where=_CONNECT,
           meaning="an announced thermal state (0..1) for the embedded observer"),
    Option("budget_bytes", "int", 1, None, where=_STORE, meaning="the store's budget, in bytes"),
    Option("max_budget_bytes", "int", 1, None, optional=True, default="None", where=_STORE,
           meaning="a cap on any budget a decision gives the store"),
    Option("tier", "tier", default="64", where=_STORE,
           meaning="the lowest tier low-value blocks may go to until a decision sets one"),
    Option("lossless_first", "bool", default="True", where=_STORE,
           meaning="the storage ladder: lossless first, lossy only for low-value blocks"),
    Option("hot_blocks", "int", 0, 1 << 20, default="1", where=_STORE,
           meaning="per series, the newest blocks kept in float64 (lossless_first)"),
    Option("low_value_threshold", "float", 0.0, 1.0, default="0.3", where=_STORE,
           meaning="a block whose `value` is at most this may go lossy (lossless_first)"),
    Option("chunk", "int", 1, 1 << 24, default="256", where=_STORE,
           meaning="values per series kept pending (float64) before they are written as a block"),
    Option("high_value_threshold", "float", 0.0, 1.0, default="0.8", where=_STORE,
           meaning="a window whose `value` is at least this is kept at the top tier"),
    Option("retry_writes", "int", 0, 1 << 20, default="4", where=_STORE,
           meaning="refused writes kept pending per series before the oldest is dropped"),
)  # fmt: skip

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def check(where: str, given: Mapping[str, Any], known: Iterable[str] = ()) -> None:
    """Validate ``given`` against the options declared for ``where``.

    A name that is neither declared there nor in ``known`` (options passed on untouched, such
    as ``settings`` or ``bus``) is an error too: a misspelt option must not be ignored.
    """
    allowed = {o.name for o in OPTIONS if where in o.where} | set(known)
    for name, value in given.items():
        if name not in allowed:
            raise ClientOptionError(
                f"{where} has no option {name!r} (known: {', '.join(sorted(allowed))})"
            )
        option = BY_NAME.get(name)
        if option is not None and where in option.where:
            option.check(value)


def markdown_table(where: str) -> str:
    """The options of ``where`` as a markdown table (docs/engine.md carries it)."""
    rows = ["| option | allowed | default | meaning |", "|---|---|---|---|"]
    for o in OPTIONS:
        if where in o.where:
            rows.append(f"| `{o.name}` | {o.allowed()} | {o.default} | {o.meaning} |")
    return "\n".join(rows)
