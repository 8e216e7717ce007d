"""The engine client's options: rejected at construction, one line naming the option."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.engine import BackgroundClient, ClientOptionError, EngineClient, EngineStore, connect
from core.engine.options import OPTIONS, markdown_table
from services.bus.memory import MemoryBus

BAD = [
    ("latency_objective_ms", "25"),
    ("latency_objective_ms", -5),
    ("latency_objective_ms", math.nan),
    ("latency_objective_ms", math.inf),
    ("memory_limit_bytes", "1G"),
    ("memory_limit_bytes", 0),
    ("memory_limit_bytes", 1.5e9),
    ("feedback_interval_seconds", 0),
    ("store_budget_bytes", -1),
    ("store_budget_bytes", True),
    ("max_store_bytes", -1),
    ("stale_after_seconds", 0),
    ("adopted_kept", 0),
    ("reports_kept", 10**9),
    ("clock", 3.0),
    ("host_id", ""),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_engine_client_rejects_a_bad_option_naming_it_and_its_range(
    name: str, value: object
) -> None:
    with pytest.raises(ClientOptionError) as err:
        EngineClient(MemoryBus(), **{name: value})  # type: ignore[arg-type]
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{name}={value!r}: must be ")
    assert BY_ALLOWED[name] in msg
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)


BY_ALLOWED = {o.name: o.allowed() for o in OPTIONS}


def test_the_allowed_ranges_read_as_stated() -> None:
    assert BY_ALLOWED["latency_objective_ms"] == "a finite number > 0, <= 3600000"
    assert BY_ALLOWED["memory_limit_bytes"] == "a whole number >= 1 or None"
    assert BY_ALLOWED["feedback_interval_seconds"] == "a finite number >= 0.01, <= 3600"
    assert BY_ALLOWED["tier"] == "one of 8, 16, 32, 64, 80"


@pytest.mark.parametrize(("name", "value"), BAD)
def test_background_client_rejects_it_before_its_thread_starts(name: str, value: object) -> None:
    with pytest.raises(ClientOptionError, match=f"^{name}="):
        BackgroundClient(**{name: value})


def test_a_misspelt_option_is_an_error_not_ignored() -> None:
    with pytest.raises(ClientOptionError, match="no option 'latency_objetive_ms'"):
        BackgroundClient(latency_objetive_ms=25)


async def test_connect_rejects_it_before_starting_anything() -> None:
    bus = MemoryBus()
    with pytest.raises(ClientOptionError, match="^feedback_interval_seconds=0: "):
        async with connect(bus=bus, feedback_interval_seconds=0):
            pass  # pragma: no cover
    with pytest.raises(ClientOptionError, match="^embedded_qas='yes': must be True or False"):
        async with connect(bus=bus, embedded_qas="yes"):  # type: ignore[arg-type]
            pass  # pragma: no cover


@pytest.mark.parametrize(
    ("kwargs", "start"),
    [
        ({"budget_bytes": -1}, "budget_bytes=-1: must be a whole number >= 1"),
        ({"budget_bytes": 1 << 20, "tier": 12}, "tier=12: must be one of 8, 16, 32, 64, 80"),
        ({"budget_bytes": 1 << 20, "chunk": 0}, "chunk=0: "),
        ({"budget_bytes": 1 << 20, "high_value_threshold": 1.5}, "high_value_threshold=1.5: "),
        ({"budget_bytes": 1 << 20, "retry_writes": -1}, "retry_writes=-1: "),
        ({"budget_bytes": 1 << 20, "max_budget_bytes": 0}, "max_budget_bytes=0: "),
    ],
)
def test_engine_store_rejects_bad_options(kwargs: dict[str, object], start: str) -> None:
    budget = kwargs.pop("budget_bytes")
    with pytest.raises(ClientOptionError) as err:
        EngineStore(budget, **kwargs)  # type: ignore[arg-type]
    assert str(err.value).startswith(start)


def test_good_values_pass_including_numpy_and_int_for_float() -> None:
    import numpy as np

    c = EngineClient(MemoryBus(), latency_objective_ms=np.float64(2.5),
                     memory_limit_bytes=np.int64(1 << 30),  # type: ignore[arg-type]
                     feedback_interval_seconds=1)  # fmt: skip
    assert c.reporter.latency_objective_ms == 2.5 and c.feedback_interval_seconds == 1.0


def test_docs_carry_the_declared_tables() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "engine.md").read_text()
    for where in ("BackgroundClient", "EngineStore"):
        assert markdown_table(where) in docs, f"docs/engine.md: regenerate the {where} table"
