"""The decider's Prometheus metrics, on a registry of its own (one per instance, no global state).

The decision's fields the applier does not export (batch size, workers, quantum state), the
inputs it decided on, decisions held by the stabiliser, seconds since the last decision and
the age of every input, per host. Hosts are bounded (``LabelBound``); with ``per_host`` off
(``--metrics-per-host none``) only the fleet aggregates are served: hosts tracked, hosts per
quantum state, evaluations, hosts dropped and events of untracked hosts.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.telemetry import AgeCollector, LabelBound
from shared.messages import DecisionInputs, QuantumState, ScalingDecision

MAX_HOSTS = 256
QUANTUM_STATES: tuple[str, ...] = get_args(QuantumState)
INPUTS = ("hardware", "sensors", "entropy", "profit", "ticks")


class DeciderMetrics:
    def __init__(self, clock: Callable[[], float] = time.time, *, per_host: bool = True) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.host = LabelBound(MAX_HOSTS)
        self.clock = clock
        self.per_host = per_host
        # Fleet aggregates: no host label, served whatever per_host says.
        self.tracked_hosts = Gauge(
            "qas_tracked_hosts", "Hosts the decider holds state for (a valid hardware record)",
            registry=r,
        )  # fmt: skip
        self.unknown_events = Counter(
            "qas_unknown_host_events",
            "Inputs for hosts the decider does not track, per topic; reason: no_hardware (no "
            "valid hardware record yet), invalid_hardware (a record whose fingerprint does not "
            "match its inventory), not_allowed (outside --hosts)",
            ["topic", "reason"], registry=r,
        )  # fmt: skip
        self.hosts_dropped = Counter(
            "qas_hosts_dropped", "Tracked hosts dropped: reason cap (max_tracked_hosts, least "
            "recently seen) or expired (no input for host_state_max_age_seconds)", ["reason"],
            registry=r,
        )  # fmt: skip
        for reason in ("cap", "expired"):
            self.hosts_dropped.labels(reason)  # at 0 from the start: rules can rate() them
        self.evaluations = Counter(
            "qas_decider_evaluations", "Evaluations of every host: outcome published or held",
            ["outcome"], registry=r,
        )  # fmt: skip
        self._published_all, self._held_all = (
            self.evaluations.labels("published"), self.evaluations.labels("held"),
        )  # fmt: skip
        self.states: dict[str, str] = {}  # host -> quantum state of its last decision
        r.register(_StateCounts(self.states))
        self.batch_size = Gauge(
            "qas_batch_size", "Batch size of the last decision", ["host"], registry=r
        )
        self.workers = Gauge("qas_workers", "Workers of the last decision", ["host"], registry=r)
        self.quantum_state = Gauge(
            "qas_quantum_state",
            "1 for the quantum state of the last decision, 0 for the others",
            ["host", "state"],
            registry=r,
        )
        self.entropy = Gauge(
            "qas_market_entropy_ratio", "Market entropy the last decision used (0-1)", ["host"],
            registry=r,
        )  # fmt: skip
        self.profit = Gauge(
            "qas_profit_potential_ratio", "Profit potential the last decision used (0-1)",
            ["host"], registry=r,
        )  # fmt: skip
        self.held = Counter(
            "qas_decisions_held",
            "Evaluations the stabiliser held back (no decision published)",
            ["host"],
            registry=r,
        )
        self.published = Counter(
            "qas_decisions_published", "Decisions published", ["host"], registry=r
        )
        self.kafka_connected = Gauge(
            "qas_kafka_connected", "1 when the bus is connected (always 1 in-process)", registry=r
        )
        self.last_decision: dict[str, float] = {}
        self._children: dict[str, tuple[Any, ...]] = {}
        self.last_input: dict[tuple[str, str], float] = {}
        r.register(AgeCollector(
            "qas_last_decision_age_seconds", "Seconds since the last decision, per host",
            ["host"], lambda: (((h,), t) for h, t in self.last_decision.items()), self._now,
        ))  # fmt: skip
        r.register(AgeCollector(
            "qas_input_age_seconds",
            "Seconds since the decider last received each input, per host (wall clock)",
            ["host", "input"], lambda: (((h, i), t) for (h, i), t in self.last_input.items()),
            self._now,
        ))  # fmt: skip
        self._dead: dict[str, Tally[str]] = {}
        r.register(_DeadLetters(self._dead))

    def _now(self) -> float:
        return self.clock()

    def watch_dead_letters(self, service: str, stats: Tally[str]) -> None:
        self._dead[service] = stats

    def observe_input(self, host_id: str, which: str) -> None:
        if self.per_host:
            self.last_input[(self.host(host_id), which)] = self.clock()

    def forget(self, host_id: str) -> None:
        """Remove a dropped host's series, so its slot goes to a host still running."""
        self.states.pop(host_id, None)
        if not self.host.forget(host_id):
            return  # never had series of its own (it read ``other``)
        self._children.pop(host_id, None)  # cached children of removed series would be orphans
        for gauge in (self.batch_size, self.workers, self.entropy, self.profit, self.held,
                      self.published):  # fmt: skip
            with contextlib.suppress(KeyError):
                gauge.remove(host_id)
        for state in QUANTUM_STATES:
            with contextlib.suppress(KeyError):
                self.quantum_state.remove(host_id, state)
        self.last_decision.pop(host_id, None)
        for which in INPUTS:
            self.last_input.pop((host_id, which), None)

    def observe_held(self, host_id: str) -> None:
        self._held_all.inc()
        if self.per_host:
            self.held.labels(self.host(host_id)).inc()

    def observe_decision(self, d: ScalingDecision) -> None:
        self._published_all.inc()
        self.states[d.host_id] = d.quantum_state
        if not self.per_host:
            return
        h = self.host(d.host_id)
        self.last_decision[h] = self.clock()
        # A host's label children, looked up once (labels() costs microseconds a call; the
        # children live as long as the registry: hosts are bounded and never removed).
        children = self._children.get(h)
        if children is None:
            children = self._children[h] = (
                self.published.labels(h), self.batch_size.labels(h), self.workers.labels(h),
                tuple((s, self.quantum_state.labels(h, s)) for s in QUANTUM_STATES),
                self.entropy.labels(h), self.profit.labels(h),
            )  # fmt: skip
        published, batch_size, workers, states, entropy, profit = children
        published.inc()
        batch_size.set(d.batch_size)
        workers.set(d.workers)
        for state, gauge in states:
            gauge.set(1.0 if state == d.quantum_state else 0.0)
        entropy.set(d.inputs.market_entropy)
        profit.set(d.inputs.profit_potential)

    def observe_inputs(self, h: str, inputs: DecisionInputs) -> None:
        self.entropy.labels(h).set(inputs.market_entropy)
        self.profit.labels(h).set(inputs.profit_potential)


class _StateCounts(Collector):
    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "qas_hosts_in_quantum_state", "Tracked hosts whose last decision is in each state",
            labels=["state"],
        )  # fmt: skip
        counts = Tally(self.states.values())
        for state in QUANTUM_STATES:
            family.add_metric([state], counts.get(state, 0))
        yield family


class _DeadLetters(Collector):
    def __init__(self, sources: dict[str, Tally[str]]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "qas_dead_letters", "Messages sent to the dead-letter topic", labels=["service"]
        )
        for service, stats in self.sources.items():
            family.add_metric([service], stats.get("dead_letters", 0))
        yield family
