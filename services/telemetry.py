"""What every service's /metrics page has in common: one page per process, bounded labels.

Each service keeps its metrics on a registry of its own (no global state). A process serves one
``Page``: the registries of the services it runs merged into one exposition (families of the
same name, such as ``qas_dead_letters_total`` or ``qas_kafka_connected``, become one family;
an identical sample from two services is shown once), plus build info and process metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from shared.codecs import KERNEL
from shared.messages import SCHEMA_VERSION

OTHER = "other"  # the label value every value past a LabelBound's limit is folded into


def qas_version() -> str:
    try:
        return version("quantum-autoscaler")
    except PackageNotFoundError:
        return "unknown"


class LabelBound:
    """At most ``limit`` distinct values of one label (hosts, sensors); later ones read
    ``other``, so a flood of new host ids cannot grow the series count without bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(value)
        return value

    def forget(self, value: str) -> bool:
        """Free ``value``'s slot (its host was dropped); True when it held one."""
        if value in self._seen:
            self._seen.discard(value)
            return True
        return False


class LagCollector(Collector):
    """Consumer lag per group, topic and partition, read at scrape time from the services'
    ``lag`` maps (the consume loop refreshes them after every poll)."""

    def __init__(self) -> None:
        self.sources: dict[str, dict[tuple[str, int], int]] = {}

    def watch(self, group: str, lag: dict[tuple[str, int], int]) -> None:
        self.sources[group] = lag

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "qas_consumer_lag_records",
            "Records published but not yet consumed, per consumer group and partition",
            labels=["group", "topic", "partition"],
        )
        for group, lag in self.sources.items():
            for (topic, partition), n in sorted(lag.items()):
                family.add_metric([group, topic, str(partition)], n)
        yield family


class AgeCollector(Collector):
    """A gauge of seconds since a per-label timestamp, computed at scrape time."""

    def __init__(
        self,
        name: str,
        doc: str,
        labels: list[str],
        source: Callable[[], Iterable[tuple[tuple[str, ...], float]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.source, self.clock = source, clock

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        now = self.clock()
        for values, stamp in self.source():
            family.add_metric(list(values), max(0.0, now - stamp))
        yield family


class _Merged(Collector):
    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self.registries = list(registries)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for registry in self.registries:
            for family in registry.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for s in family.samples:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    if key not in seen:
                        seen.add(key)
                        merged.samples.append(s)
        yield from families.values()


def build_registry(host: str) -> CollectorRegistry:
    """Build info (with the host id, so rules can join it onto host-less series by instance)
    and process metrics, once per process."""
    r = CollectorRegistry(auto_describe=True)
    info = GaugeMetricFamily(
        "qas_build_info",
        "QAS build: version, message schema version, the codec kernel in use and the host id "
        "this process runs as (always 1)",
        labels=["version", "schema_version", "codec_kernel", "host"],
    )
    info.add_metric([qas_version(), str(SCHEMA_VERSION), KERNEL, host], 1.0)

    class _Info(Collector):
        def collect(self) -> Iterator[Metric]:
            yield info

    r.register(_Info())
    ProcessCollector(registry=r)
    return r


class Page:
    """One /metrics page for the services of one process."""

    def __init__(self, *registries: CollectorRegistry, host: str = "") -> None:
        self.registries = registries
        self.registry = CollectorRegistry(auto_describe=False)
        own = build_registry(host)
        self.lag = LagCollector()  # the consuming services' lag maps: watch(group, lag)
        own.register(self.lag)
        self.registry.register(_Merged([own, *registries]))
        self._server: Any = None

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve /metrics; port 0 picks a free one. Returns the bound port."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = (server, thread)
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            assert isinstance(thread, threading.Thread)
            thread.join(timeout=5)
            self._server = None
