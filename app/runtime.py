"""Wiring: build the bus and services from options and run them until stopped.

The embedded default and the Kafka deployment run the same service code; only the bus differs.
SIGINT/SIGTERM set the stop event: each loop finishes its batch, commits and closes; a connect
that is still retrying an unreachable broker is cancelled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

import msgspec
from msgspec import Struct

from app.garbage import sweep_garbage
from app.keys import load_key_file, load_verify_key_file, public_path
from app.options import default
from services.applier.actuators import CgroupLimits, GpuPowerLimit, PoolEnactor, ProcessLimits
from services.applier.metrics import Metrics
from services.applier.pool import TieredPool
from services.applier.service import ApplierService
from services.applier.state import StateFile
from services.base import Handler
from services.bus.base import Bus, BusError
from services.bus.consume import Rejected
from services.bus.kafka import KafkaBus
from services.bus.memory import MemoryBus
from services.bus.security import BrokerSecurity, sasl_password
from services.decider.metrics import DeciderMetrics
from services.decider.service import DeciderService
from services.observer.metrics import ObserverMetrics
from services.observer.nvml import NvmlReader, load_pynvml
from services.observer.probe import HardwareProbe
from services.observer.service import ObserverService
from services.telemetry import Page
from shared.config import Settings
from shared.enactor import Enactor
from shared.hostfilter import HostFilter, only
from shared.messages import ApplyResult, PriceTick, ScalingDecision, encode
from shared.signing import KeyFileError, KeyRing, LegacyKeyError, SigningKey

log = logging.getLogger("qas")


@dataclass
class Options:
    """What the services run with; each default is the one declared in ``app.options``."""

    bootstrap_servers: str | None = default("bootstrap_servers")
    duration: float | None = default("duration")
    json: bool = default("json")
    metrics_port: int | None = default("metrics_port")
    metrics_addr: str = default("metrics_addr")
    host_id: str = default("host_id")
    connect_timeout: float = default("connect_timeout")
    fetch_max_wait_ms: float = default("fetch_max_wait_ms")
    session_timeout: float = default("session_timeout")
    gc_interval: float = default("gc_interval")
    partitions: int = default("partitions")
    hosts: HostFilter | None = default("hosts")  # noqa: RUF009 - None: every host
    metrics_per_host: str = default("metrics_per_host")
    settings: Settings = field(default_factory=Settings)
    # Actuators: all off until configured; dry_run reports what they would do.
    cgroup: Path | None = default("cgroup")  # noqa: RUF009 - an immutable None
    cgroup_cpu: Path | None = default("cgroup_cpu")  # noqa: RUF009 - an immutable None
    target_pid: int | None = default("target_pid")
    gpu_power_limit: bool = default("gpu_power_limit")
    dry_run: bool = default("dry_run")
    market: str = default("market")  # "sample": loop the shipped S&P 500 sample as the market
    market_rate: float = default("market_rate")  # rows per second
    # Security (docs/security-setup.md: signed decisions, TLS and SASL).
    signing_key_file: Path | None = default("signing_key_file")  # noqa: RUF009 - None
    verify_key_file: Path | None = default("verify_key_file")  # noqa: RUF009 - None
    legacy_hmac_keys: bool = default("legacy_hmac_keys")
    state_dir: Path | None = default("state_dir")  # noqa: RUF009 - None
    insecure_unsigned: bool = default("insecure_unsigned")
    security_protocol: str = default("security_protocol")
    ssl_cafile: Path | None = default("ssl_cafile")  # noqa: RUF009 - an immutable None
    ssl_certfile: Path | None = default("ssl_certfile")  # noqa: RUF009 - an immutable None
    ssl_keyfile: Path | None = default("ssl_keyfile")  # noqa: RUF009 - an immutable None
    sasl_mechanism: str | None = default("sasl_mechanism")
    sasl_username: str | None = default("sasl_username")
    sasl_password_file: Path | None = default("sasl_password_file")  # noqa: RUF009 - None

    @property
    def resolved_host_id(self) -> str:
        return self.host_id or self.settings.host_id or socket.gethostname()


def broker_security(opts: Options) -> BrokerSecurity:
    return BrokerSecurity(
        opts.security_protocol, ssl_cafile=opts.ssl_cafile, ssl_certfile=opts.ssl_certfile,
        ssl_keyfile=opts.ssl_keyfile, sasl_mechanism=opts.sasl_mechanism,
        sasl_username=opts.sasl_username, sasl_password=sasl_password(opts.sasl_password_file),
    )  # fmt: skip


def make_bus(opts: Options) -> Bus:
    if not opts.bootstrap_servers:
        return MemoryBus()
    t = opts.settings.topics
    return KafkaBus(
        opts.bootstrap_servers,
        connect_timeout=opts.connect_timeout,
        fetch_max_wait=opts.fetch_max_wait_ms / 1000.0,
        session_timeout=opts.session_timeout,
        partitions=opts.partitions,
        topics=t.all(),
        compacted_topics=t.compacted(),
        security=broker_security(opts),
    )


def signing_keys(opts: Options, which: tuple[str, ...]) -> KeyRing | None:
    """The key ring the decider signs with, or the one the applier verifies with.

    The decider loads its private key (--signing-key-file); a lone applier loads public keys
    only (--verify-key-file) and refuses a private key file: a host that only verifies must
    hold nothing that signs. During a migration (--legacy-hmac-keys) an HMAC key file may sign
    or, beside the public keys, verify. A process that runs both (``qas run``, replays) signs
    with its key file or an ephemeral key, and verifies with the same ring. Otherwise
    --insecure-unsigned (None: no signing, no checking) or a usage error.
    """
    signs, verifies = "decider" in which, "applier" in which
    if not (signs or verifies):
        return None  # the observer neither signs nor verifies
    ring: KeyRing | None = None
    if opts.signing_key_file is not None:
        ring = _private_ring(opts.signing_key_file, opts.legacy_hmac_keys)
        if signs:
            ring.signer  # noqa: B018 - raises now, not at the first decision, for a public key
        elif any(isinstance(k, SigningKey) for k in ring.keys):
            raise KeyFileError(f"qas applier verifies with public keys only: --verify-key-file "
                               f"{public_path(opts.signing_key_file)} (QAS_VERIFY_KEY_FILE), and "
                               "keep the private key on the decider's host alone")  # fmt: skip
    if verifies and not signs and opts.verify_key_file is not None:
        public = load_verify_key_file(opts.verify_key_file)
        ring = public if ring is None else public.merged(ring)
    if ring is not None:
        if ring.has_hmac:
            log.warning("--legacy-hmac-keys: %s HMAC keys, which every host that holds them can "
                        "sign with; turn the flag off once every decider signs with Ed25519 "
                        "(docs/upgrading.md)", "signing with" if signs else "accepting")  # fmt: skip
        return ring
    if signs and verifies:
        return KeyRing.ephemeral()
    if opts.insecure_unsigned:
        log.warning("--insecure-unsigned: decisions are %s; anyone who can write to %s "
                    "controls this host's limits", "published unsigned" if signs
                    else "enacted without checking signatures", opts.settings.topics.decisions)  # fmt: skip
        return None
    if signs:
        raise KeyFileError("qas decider needs its private signing key: --signing-key-file PATH "
                           "(QAS_SIGNING_KEY_FILE; `qas keygen PATH` writes PATH and PATH.pub), "
                           "or --insecure-unsigned")  # fmt: skip
    raise KeyFileError("qas applier needs the decider's public key: --verify-key-file PATH.pub "
                       "(QAS_VERIFY_KEY_FILE; `qas keygen PATH` writes it), or "
                       "--insecure-unsigned")  # fmt: skip


def _private_ring(path: Path, allow_hmac: bool) -> KeyRing:
    try:
        return load_key_file(path, allow_hmac=allow_hmac)
    except LegacyKeyError as exc:
        raise KeyFileError(f"{exc}; --legacy-hmac-keys accepts it during a migration") from None


def make_probe(opts: Options, root: Path = Path("/")) -> HardwareProbe:
    return HardwareProbe(
        opts.settings, opts.resolved_host_id, root=root, nvml=NvmlReader(load_pynvml())
    )


async def sample_market(opts: Options, bus: Bus, stop: asyncio.Event) -> None:
    """Loop the shipped sample as live ticks (wall-clock time), for a demo without an engine."""
    from shared.csvseries import read_series
    from shared.data import SAMPLE

    series = await asyncio.to_thread(read_series, SAMPLE)
    host, topic = opts.resolved_host_id, opts.settings.topics.ticks
    log.info("market: looping %s at %g rows/s", SAMPLE.name, opts.market_rate)
    while not stop.is_set():
        for price in series.prices.tolist():
            tick = PriceTick(event_time=time.time(), host_id=host, symbol="SPX-sample", price=price)
            try:
                await bus.publish(topic, host, encode(tick))
            except BusError as exc:  # a demo tick lost while the broker is away; go on
                if stop.is_set():
                    return
                log.warning("market: tick not published (%s)", exc)
            try:
                await asyncio.wait_for(stop.wait(), 1.0 / opts.market_rate)
                return
            except TimeoutError:
                pass


def make_enactors(opts: Options, pool: TieredPool) -> list[Enactor]:
    enactors: list[Enactor] = [PoolEnactor(pool)]
    if opts.cgroup is not None:
        enactors.append(CgroupLimits(opts.cgroup, opts.cgroup_cpu, dry_run=opts.dry_run))
    if opts.target_pid is not None:
        enactors.append(ProcessLimits(opts.target_pid, dry_run=opts.dry_run))
    if opts.gpu_power_limit:
        nvml = load_pynvml()
        if nvml is not None:
            enactors.append(GpuPowerLimit(nvml, dry_run=opts.dry_run))
    return enactors


class Sink(Protocol):
    """Where ``qas run`` shows each decision published and apply result (JSON or text lines)."""

    def decision(self, d: ScalingDecision) -> None: ...

    def applied(self, r: ApplyResult) -> None: ...


class JsonLines:
    """--json: one object per line on stdout for every decision published and apply result."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.counts = {"decision": 0, "applied": 0}

    def emit(self, kind: str, msg: Struct, extra: dict[str, Any] | None = None) -> None:
        record: dict[str, Any] = {"type": kind, **(extra or {}), **msgspec.to_builtins(msg)}
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()
        self.counts[kind] += 1

    def decision(self, d: ScalingDecision) -> None:
        self.emit("decision", d, {
            "input_time": datetime.fromtimestamp(d.event_time, UTC).isoformat(),
            "market_entropy": d.inputs.market_entropy,
            "profit_potential": d.inputs.profit_potential,
            "thermal_state": d.inputs.thermal_state,
        })  # fmt: skip

    def applied(self, r: ApplyResult) -> None:
        self.emit("applied", r)


class InProcessApplier(ApplierService):
    """The applier of a process that also runs the decider (``qas run``): decisions arrive in
    process, one hop instead of a Kafka round trip, and are not read back from qas.decisions
    (still published there, for the engine and for appliers elsewhere). No consumer group has
    to join before the first decision is applied, so none is lost to a late join."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inbox: asyncio.Queue[ScalingDecision] = asyncio.Queue()

    def handlers(self) -> Mapping[str, Handler]:
        return {role: h for role, h in super().handlers().items() if role != "decisions"}

    def hand(self, d: ScalingDecision) -> None:
        """The decider's callback, as it publishes ``d`` (the publish is not awaited first)."""
        self.inbox.put_nowait(d)

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._deliver(stop))
            await super().run(stop)

    async def _deliver(self, stop: asyncio.Event) -> None:
        """Apply handed decisions in order until stopped (what is queued then is dropped: the
        engine and any other applier still have it on qas.decisions)."""
        while not stop.is_set():
            get = asyncio.ensure_future(self.inbox.get())
            halt = asyncio.ensure_future(stop.wait())
            await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
            halt.cancel()
            if not get.done():
                get.cancel()
                return
            try:
                await self.on_decision(get.result())
                self.stats["in_process"] += 1
            except Rejected:
                pass  # acknowledged as rejected and counted by on_decision
            except Exception:
                log.exception("applying an in-process decision failed")
                self.stats["dead_letters"] += 1


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def unless_stopped(stop: asyncio.Event, work: Awaitable[None]) -> bool:
    """Run ``work`` (connecting: it may retry an unreachable broker for --connect-timeout) and
    return True, or cancel it as soon as ``stop`` is set and return False. Work that does not
    watch the stop event itself (a connect retry) is stopped this way within the signal's
    second; what it opened is closed by its own cancellation handling."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


# After stop, services get this long to finish their batch, commit and leave; then they are
# cancelled, so a broker that is away (paused, restarting) cannot hold a stop past 10 s
# (closing the bus takes at most CLOSE_SECONDS more, services/bus/kafka.py).
STOP_GRACE_SECONDS = 6.0


async def _until_stopped(stop: asyncio.Event, work: Awaitable[None]) -> None:
    """Run ``work``; once ``stop`` is set, give it STOP_GRACE_SECONDS, then cancel it."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
            except TimeoutError:
                log.warning("services did not stop within %g s; cancelled", STOP_GRACE_SECONDS)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        else:
            task.result()
    finally:
        stopped.cancel()


async def _stop_after(stop: asyncio.Event, seconds: float | None) -> None:
    if seconds is None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    stop.set()


def decider_hosts(
    opts: Options, which: tuple[str, ...], host: str
) -> tuple[HostFilter | None, str]:
    """The hosts a decider tracks, and its consumer group. ``qas run`` (observer and decider in
    one process) decides for its own host only, on Kafka in a group of its own that reads every
    partition (in the shared group its partitions' other hosts would go undecided); given
    --hosts it is one more member of the deciders' shared group."""
    if opts.hosts is None and "observer" in which:
        return only(host), ("qas-decider" if opts.bootstrap_servers is None
                            else f"qas-decider.{host}")  # fmt: skip
    return opts.hosts, "qas-decider"


async def run_services(
    opts: Options,
    which: tuple[str, ...] = ("observer", "decider", "applier"),
    *,
    bus: Bus | None = None,
    stop: asyncio.Event | None = None,
    sink: Sink | None = None,
) -> dict[str, Any]:
    """Run the chosen services on one bus until stop/duration. Returns their stats."""
    stop = stop or asyncio.Event()
    install_signal_handlers(stop)
    keys = signing_keys(opts, which)  # before connecting: a missing key is a usage error
    bus = bus or make_bus(opts)
    host = opts.resolved_host_id
    if not await unless_stopped(stop, bus.start()):
        log.info("stopped while connecting to %s", opts.bootstrap_servers or "the embedded bus")
        await bus.stop()
        return {}
    metrics = Metrics(opts.settings.max_sensor_series_per_host)
    observer_metrics = ObserverMetrics()
    decider_metrics = DeciderMetrics(per_host=opts.metrics_per_host == "all")
    page = Page()
    services: dict[str, Any] = {}
    try:
        if "observer" in which:
            services["observer"] = ObserverService(bus, make_probe(opts), opts.settings,
                                                   metrics=observer_metrics)  # fmt: skip
        if "decider" in which:
            tracked, group = decider_hosts(opts, which, host)
            services["decider"] = DeciderService(bus, opts.settings, host, signer=keys,
                                                 metrics=decider_metrics, hosts=tracked,
                                                 group=group)  # fmt: skip
            log.info("deciding for %s", "every host with a hardware record" if tracked is None
                     else f"hosts {tracked.describe()}")  # fmt: skip
            if sink:
                services["decider"].on_published = sink.decision
        if "applier" in which:
            pool = TieredPool(budget_bytes=64 << 20)
            kind = InProcessApplier if "decider" in which else ApplierService
            state = None if opts.state_dir is None else StateFile(opts.state_dir, host)
            applier = kind(bus, opts.settings, host, metrics=metrics, pool=pool,
                           enactors=make_enactors(opts, pool), verifier=keys, state=state)  # fmt: skip
            if isinstance(applier, InProcessApplier):
                services["decider"].on_decision = applier.hand
            if sink:
                applier.on_result = sink.applied
            services["applier"] = applier
        # One /metrics page for every service this process runs.
        mine: dict[str, ObserverMetrics | DeciderMetrics | Metrics] = {
            "observer": observer_metrics,
            "decider": decider_metrics,
            "applier": metrics,
        }
        page = Page(*(mine[name].registry for name in services), host=host)
        for svc in services.values():
            if hasattr(svc, "lag"):
                page.lag.watch(svc.group, svc.lag)
        if opts.metrics_port is not None:
            port = page.serve(opts.metrics_port, opts.metrics_addr)
            log.info("metrics on http://%s:%d/metrics", opts.metrics_addr, port)
        log.info(
            "running %s on %s as host %s",
            ", ".join(services),
            opts.bootstrap_servers or "the embedded bus",
            host,
        )

        async def all_services() -> None:
            async with asyncio.TaskGroup() as tg:
                for svc in services.values():
                    tg.create_task(svc.run(stop))
                tg.create_task(_stop_after(stop, opts.duration))
                if opts.gc_interval > 0:
                    tg.create_task(sweep_garbage(stop, opts.gc_interval))
                if opts.market == "sample":
                    tg.create_task(sample_market(opts, bus, stop))

        await _until_stopped(stop, all_services())
    finally:
        stop.set()
        page.close()
        await bus.stop()
    return {name: dict(svc.stats) for name, svc in services.items()}
