"""`qas top`: a live terminal view of QAS from the bus, one host or all, refreshed every second.

On a terminal it draws with rich (works over SSH, on a Raspberry Pi); in a pipe it prints one
summary line per second instead. Without --bootstrap-servers it runs the pipeline itself on the
embedded bus (like `qas run`) and watches it; with Kafka it joins as a consumer group of its own
and reads what the services publish.

What it shows comes from the topics: the decision with its reasons (qas.decisions), the inputs
with sparklines (market.entropy / market.profit as the decider used them, qas.sensors), the
pool against the decision's memory budget and the last apply results (qas.applied), dead
letters (qas.dlq) and lag: the services' groups on the embedded bus, this view's own on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from services.applier.service import applier_group
from services.bus.base import Bus, Record
from services.bus.memory import MemoryBus
from shared.config import Settings
from shared.messages import (
    ApplyResult,
    DeadLetter,
    HardwareSnapshot,
    ScalingDecision,
    SensorReading,
    decode,
)

SPARKS = "▁▂▃▄▅▆▇█"
HISTORY = 60  # points per sparkline: a minute at one a second
APPLIED_KEPT = 5
MAX_HOSTS = 64  # a view of a fleet: hosts past this are counted, not shown


def sparkline(values: Iterable[float], lo: float = 0.0, hi: float = 1.0) -> str:
    span = hi - lo or 1.0
    out = []
    for v in values:
        i = round((min(hi, max(lo, v)) - lo) / span * (len(SPARKS) - 1))
        out.append(SPARKS[i])
    return "".join(out)


def gib(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 28 else f"{n / (1 << 20):.1f} MiB"


@dataclass
class HostView:
    decision: ScalingDecision | None = None
    entropy: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    profit: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    thermal: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    applied: deque[ApplyResult] = field(default_factory=lambda: deque(maxlen=APPLIED_KEPT))
    sensors: SensorReading | None = None
    hardware: HardwareSnapshot | None = None
    decisions: int = 0


@dataclass
class TopState:
    """Everything the view shows; fed one decoded message at a time (no I/O)."""

    hosts: dict[str, HostView] = field(default_factory=dict)
    dead_letters: int = 0
    lag: dict[str, int] = field(default_factory=dict)  # group -> records behind
    lag_label: str = "lag"
    hidden_hosts: int = 0

    def host(self, host_id: str) -> HostView | None:
        view = self.hosts.get(host_id)
        if view is None:
            if len(self.hosts) >= MAX_HOSTS:
                self.hidden_hosts += 1
                return None
            view = self.hosts[host_id] = HostView()
        return view

    def observe(self, msg: Any) -> None:
        if isinstance(msg, DeadLetter):
            self.dead_letters += 1
            return
        view = self.host(msg.host_id)
        if view is None:
            return
        if isinstance(msg, ScalingDecision):
            view.decision = msg
            view.decisions += 1
            view.entropy.append(msg.inputs.market_entropy)
            view.profit.append(msg.inputs.profit_potential)
        elif isinstance(msg, ApplyResult):
            view.applied.append(msg)
        elif isinstance(msg, SensorReading):
            view.sensors = msg
            view.thermal.append(msg.thermal_state)
        elif isinstance(msg, HardwareSnapshot):
            view.hardware = msg

    def shown(self, host: str | None) -> list[tuple[str, HostView]]:
        return sorted((h, v) for h, v in self.hosts.items() if host in (None, "", h))


def summary_line(state: TopState, host: str | None, now: float | None = None) -> str:
    """The pipe mode's line: one a second, every shown host on it."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%H:%M:%S")
    parts = []
    for h, v in state.shown(host):
        d = v.decision
        if d is None:
            parts.append(f"{h} waiting for a decision")
            continue
        last = v.applied[-1].status if v.applied else "-"
        thermal = v.thermal[-1] if v.thermal else d.inputs.thermal_state
        parts.append(
            f"{h} factor {d.scaling_factor:.3f} {d.precision_tier} batch {d.batch_size} "
            f"workers {d.workers} {d.quantum_state} conf {d.confidence:.2f} "
            f"entropy {d.inputs.market_entropy:.2f} profit {d.inputs.profit_potential:.2f} "
            f"thermal {thermal:.2f} apply {last}"
        )
    lag = sum(state.lag.values())
    tail = f"dead letters {state.dead_letters}  {state.lag_label} {lag}"
    return f"{stamp}  " + (" | ".join(parts) or "no host seen yet") + f"  {tail}"


def _host_panel(h: str, v: HostView) -> Panel:
    d = v.decision
    body: list[Any] = []
    if d is None:
        body.append(Text("waiting for the first decision", style="dim"))
    else:
        head = Table.grid(padding=(0, 2))
        head.add_row(
            Text(f"factor {d.scaling_factor:.3f}", style="bold"),
            f"memory x{d.memory_adjustment:.2f} ({gib(d.memory_budget_bytes)})",
            f"precision {d.precision_tier}",
            f"batch {d.batch_size}",
            f"workers {d.workers}",
            f"confidence {d.confidence:.2f}",
            Text(d.quantum_state, style="cyan"),
        )
        body.append(head)
        for reason in d.reasons[:4]:
            body.append(Text(f"  - {reason}", style="dim"))
    inputs = Table(box=None, show_header=False, padding=(0, 1))
    inputs.add_column(width=16)
    inputs.add_column(width=6, justify="right")
    inputs.add_column()
    for name, series in (("market entropy", v.entropy), ("profit potential", v.profit),
                         ("thermal state", v.thermal)):  # fmt: skip
        last = f"{series[-1]:.2f}" if series else "-"
        inputs.add_row(name, last, Text(sparkline(series), style="green"))
    body.append(inputs)
    if v.applied:
        r = v.applied[-1]
        budget = d.memory_budget_bytes if d is not None else 0
        share = f" of {gib(budget)} budget" if budget else ""
        body.append(Text(f"pool {gib(r.bytes_after)}{share}, error bound {r.error_bound:.2e}"))
        applied = Table("apply", "status", "took", "reason", box=None, padding=(0, 1))
        for a in reversed(v.applied):
            stamp = datetime.fromtimestamp(a.event_time, UTC).strftime("%H:%M:%S")
            style = {"applied": "green", "skipped": "yellow"}.get(a.status, "red")
            applied.add_row(stamp, Text(a.status, style=style),
                            f"{a.duration_seconds * 1000:.1f} ms", a.reason[:60])  # fmt: skip
        body.append(applied)
    return Panel(Group(*body), title=f"[bold]{h}[/bold]  {v.decisions} decisions", expand=True)


def render(state: TopState, host: str | None) -> Group:
    """The live view: a panel per shown host, then the pipeline's health."""
    panels: list[Any] = [_host_panel(h, v) for h, v in state.shown(host)]
    if not panels:
        panels.append(Text(f"no decision seen yet for {host or 'any host'}", style="dim"))
    health = Text(f"dead letters {state.dead_letters}   ")
    lags = ", ".join(f"{g} {n}" for g, n in sorted(state.lag.items())) or "0"
    health.append(f"{state.lag_label}: {lags}")
    if state.hidden_hosts:
        health.append(f"   ({state.hidden_hosts} messages from hosts past {MAX_HOSTS} not shown)")
    panels.append(health)
    return Group(*panels)


# --- the loop ---------------------------------------------------------------------------------


def _kinds(settings: Settings) -> dict[str, type[Any]]:
    t = settings.topics
    return {t.decisions: ScalingDecision, t.applied: ApplyResult, t.sensors: SensorReading,
            t.hardware: HardwareSnapshot, t.dlq: DeadLetter}  # fmt: skip


def feed(state: TopState, records: Iterable[Record], kinds: dict[str, type[Any]]) -> None:
    for r in records:
        kind = kinds.get(r.topic)
        if kind is None:
            continue
        try:
            state.observe(decode(r.value, kind))
        except Exception:
            if kind is DeadLetter:
                state.dead_letters += 1


def memory_lag(bus: MemoryBus, groups: Iterable[str]) -> dict[str, int]:
    return {g: sum(bus.group_lag(g).values()) for g in groups}


async def watch(
    bus: Bus,
    settings: Settings,
    host: str | None,
    stop: asyncio.Event,
    *,
    tick: Callable[[TopState], None],
    lag: Callable[[], dict[str, int]] | None = None,
) -> TopState:
    """Consume the topics into a TopState and call ``tick`` about once a second."""
    state = TopState()
    kinds = _kinds(settings)
    consumer = bus.consumer(list(kinds), f"qas-top-{os.getpid()}-{int(time.time())}")
    await consumer.start()
    try:
        next_tick = time.monotonic()
        while not stop.is_set():
            feed(state, await consumer.getmany(timeout=0.2), kinds)
            if time.monotonic() >= next_tick:
                if lag is not None:
                    state.lag = lag()
                else:
                    state.lag_label, state.lag = "view lag", {"qas-top": sum(
                        (await consumer.lag()).values())}  # fmt: skip
                tick(state)
                next_tick += 1.0
    finally:
        await consumer.stop()
    return state


async def run_top(opts: Any, host: str | None, out: TextIO = sys.stdout) -> int:
    """``opts``: app.runtime.Options. Embedded: runs the pipeline too; Kafka: only watches."""
    from app.runtime import install_signal_handlers, make_bus, run_services, unless_stopped

    stop = asyncio.Event()
    install_signal_handlers(stop)
    tty = out.isatty()
    console = Console(file=out) if tty else None
    live = Live(console=console, refresh_per_second=4, transient=False) if console else None

    def tick(state: TopState) -> None:
        if live is not None:
            live.update(render(state, host))
        else:
            out.write(summary_line(state, host) + "\n")
            out.flush()

    async def stop_after() -> None:
        if opts.duration is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), opts.duration)
            stop.set()

    with live if live is not None else contextlib.nullcontext():
        if opts.bootstrap_servers:
            bus = make_bus(opts)
            if not await unless_stopped(stop, bus.start()):  # a signal while connecting
                await bus.stop()
                return 0
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(stop_after())
                    tg.create_task(watch(bus, opts.settings, host, stop, tick=tick))
            finally:
                await bus.stop()
        else:
            memory = MemoryBus()
            pipeline = replace(opts, metrics_port=None, json=False)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_services(pipeline, bus=memory, stop=stop))
                groups = ("qas-decider", applier_group(pipeline.resolved_host_id))
                tg.create_task(watch(memory, opts.settings, host, stop, tick=tick,
                                     lag=lambda: memory_lag(memory, groups)))  # fmt: skip
    return 0


async def capture(opts: Any, seconds: float) -> TopState:
    """Run the embedded pipeline for ``seconds`` and return what the view saw (for pictures)."""
    from app.runtime import run_services

    memory, stop, seen = MemoryBus(), asyncio.Event(), TopState()
    pipeline = replace(opts, metrics_port=None, json=False, duration=seconds)

    def keep(state: TopState) -> None:
        nonlocal seen
        seen = state

    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_services(pipeline, bus=memory, stop=stop))
        groups = ("qas-decider", applier_group(pipeline.resolved_host_id))
        tg.create_task(watch(memory, opts.settings, None, stop, tick=keep,
                             lag=lambda: memory_lag(memory, groups)))  # fmt: skip
    return seen


if __name__ == "__main__":  # python -m app.top OUT.svg: the README's picture of the live view
    from app.runtime import Options

    state = asyncio.run(capture(Options(market="sample", market_rate=50.0), 30.0))
    console = Console(record=True, width=120, file=open(os.devnull, "w"))
    console.print(render(state, None))
    console.save_svg(sys.argv[1], title="qas top")
