"""app/garbage.py: services collect their oldest generation on a timer, so the cyclic garbage a
broker fault leaves (aiokafka's retried commits) is freed before the next fault, not whenever
CPython's promotion rule next allows it."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from app.garbage import sweep_garbage
from app.runtime import Options, run_services
from services.bus.memory import MemoryBus


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_each_sweep_frees_the_cycles_left_since_the_last() -> None:
    found: list[int] = []

    def collect() -> int:
        found.append(gc.collect())
        return found[-1]

    stop = asyncio.Event()
    task = asyncio.create_task(sweep_garbage(stop, every=0.02, collect=collect))
    async with asyncio.timeout(5):
        while len(found) < 2:
            await asyncio.sleep(0.005)
        for _ in range(300):
            _Cycle()  # unreachable at once, freed only by a collection
        n = len(found)
        while len(found) == n:
            await asyncio.sleep(0.005)
    stop.set()
    runs = await task
    assert runs == len(found)
    assert found[n] >= 300


async def test_a_stop_ends_the_sweep_without_waiting_out_the_interval() -> None:
    stop, calls = asyncio.Event(), []
    task = asyncio.create_task(sweep_garbage(stop, every=60.0, collect=lambda: calls.append(1) or 0))
    await asyncio.sleep(0.01)
    stop.set()
    async with asyncio.timeout(1):
        assert await task == 0
    assert calls == []


@pytest.mark.parametrize("interval", [0.05, 0.0])
async def test_the_services_sweep_at_the_gc_interval_and_not_at_0(
    interval: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="qas.garbage")
    opts = Options(host_id="h1", duration=0.5, gc_interval=interval)
    await run_services(opts, ("decider", "applier"), bus=MemoryBus())
    sweeps = [r.getMessage() for r in caplog.records if r.name == "qas.garbage"]
    if interval:
        assert len(sweeps) >= 3, sweeps
        assert "unreachable objects" in sweeps[0]
    else:
        assert sweeps == []


def test_gc_interval_is_an_option_with_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import CliError, build_parser

    assert Options().gc_interval == 60.0
    monkeypatch.setenv("QAS_GC_INTERVAL", "5")
    assert build_parser().parse_args(["decider", "--bootstrap-servers", "h:1"]).gc_interval == 5.0
    with pytest.raises(CliError, match="--gc-interval: must be a finite number >= 0"):
        build_parser().parse_args(["decider", "--gc-interval", "-1"])
