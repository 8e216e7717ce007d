"""`qas`: the command line. Every option also comes from a QAS_* environment variable; flags win.

Errors (a bad option or value, an unreachable broker) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from app.runtime import JsonLines, Options, make_probe, run_services
from services.bus.base import BusError
from shared.config import Settings

EXIT_USAGE = 2
EXIT_RUNTIME = 1


class CliError(Exception):
    pass


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number: {text!r}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1]: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0 picks a free one): {text!r}")
    return value


def _bootstrap(text: str) -> str:
    for server in text.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT...], got {text!r}")
    return text


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _env_default(name: str, convert: Callable[[str], Any], fallback: Any) -> Any:
    raw = _env(name)
    if raw is None:
        return fallback
    try:
        return convert(raw)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise CliError(f"environment variable {name}: {exc}") from None


def _flag(name: str) -> bool:
    raw = _env(name)
    if raw is None:
        return False
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise CliError(f"environment variable {name}: expected true/false, got {raw!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        raise CliError(f"{self.prog}: {message}")


def _common(p: argparse.ArgumentParser, *, kafka_required: bool, metrics: bool) -> None:
    p.add_argument(
        "--bootstrap-servers",
        type=_bootstrap,
        default=_env_default("QAS_BOOTSTRAP_SERVERS", _bootstrap, None),
        required=kafka_required and _env("QAS_BOOTSTRAP_SERVERS") is None,
        metavar="HOST:PORT",
        help="Kafka bootstrap servers [env QAS_BOOTSTRAP_SERVERS]"
        + ("" if kafka_required else "; omitted: the embedded in-process bus, no broker needed"),
    )
    p.add_argument(
        "--host-id",
        default=_env("QAS_HOST_ID") or "",
        help="host id used as the message key [env QAS_HOST_ID; default: the hostname]",
    )
    p.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=_env_default("QAS_CONNECT_TIMEOUT", _positive_float, 30.0),
        metavar="SECONDS",
        help="how long to retry an unreachable broker before giving up [env QAS_CONNECT_TIMEOUT; 30]",
    )
    p.add_argument(
        "--sensor-interval",
        type=_positive_float,
        default=_env_default("QAS_SENSOR_INTERVAL", _positive_float, 1.0),
        metavar="SECONDS",
        help="seconds between sensor readings [env QAS_SENSOR_INTERVAL; 1]",
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        default=_env_default("QAS_DURATION", _positive_float, None),
        metavar="SECONDS",
        help="stop after this long [env QAS_DURATION; default: run until Ctrl-C/SIGTERM]",
    )
    if metrics:
        p.add_argument(
            "--metrics-port",
            type=_port,
            default=_env_default("QAS_METRICS_PORT", _port, 9464),
            metavar="PORT",
            help="serve Prometheus /metrics on this port (0: a free one) [env QAS_METRICS_PORT; 9464]",
        )
        p.add_argument(
            "--metrics-addr",
            default=_env("QAS_METRICS_ADDR") or "127.0.0.1",
            metavar="ADDR",
            help="address for /metrics [env QAS_METRICS_ADDR; 127.0.0.1]",
        )
        p.add_argument(
            "--no-metrics",
            action="store_true",
            default=_flag("QAS_NO_METRICS"),
            help="do not serve /metrics [env QAS_NO_METRICS]",
        )
        p.add_argument(
            "--cgroup",
            type=Path,
            default=_env_default("QAS_CGROUP", Path, None),
            metavar="DIR",
            help="enact memory/CPU limits on this cgroup directory "
            "(v2, or the v1 memory cgroup) [env QAS_CGROUP; off]",
        )
        p.add_argument(
            "--cgroup-cpu",
            type=Path,
            default=_env_default("QAS_CGROUP_CPU", Path, None),
            metavar="DIR",
            help="cgroup v1 only: the cpu controller's directory [env QAS_CGROUP_CPU]",
        )
        p.add_argument(
            "--target-pid",
            type=int,
            default=_env_default("QAS_TARGET_PID", int, None),
            metavar="PID",
            help="set CPU affinity and niceness of this process [env QAS_TARGET_PID; off]",
        )
        p.add_argument(
            "--gpu-power-limit",
            action="store_true",
            default=_flag("QAS_GPU_POWER_LIMIT"),
            help="set NVIDIA power limits through NVML (needs root) [env QAS_GPU_POWER_LIMIT; off]",
        )
        p.add_argument(
            "--dry-run",
            action="store_true",
            default=_flag("QAS_DRY_RUN"),
            help="actuators report what they would do and change nothing [env QAS_DRY_RUN]",
        )


def _speed(text: str) -> float | None:
    if text.lower() == "max":
        return None
    return _positive_float(text)


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "csv",
        type=Path,
        metavar="CSV",
        help="price file: Yahoo OHLCV, FRED two-column, or pandas OHLCV; '.gz' is read too; "
        "'sample' is the S&P 500 2007-2009 sample shipped with QAS",
    )
    p.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="X|max",
        help="rows spaced by their time gap divided by X (86400: a day a second); "
        "max: as fast as possible [default: max]",
    )
    p.add_argument(
        "--time-column", default=None, metavar="NAME", help="the time column (default: detected)"
    )
    p.add_argument(
        "--price-column", default=None, metavar="NAME", help="the price column (default: detected)"
    )
    p.add_argument("--symbol", default=None, help="symbol for the ticks (default: the file name)")


def _log_level(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--log-level",
        default=default,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level; logs go to stderr [env QAS_LOG_LEVEL; INFO]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qas",
        description="QAS, the Quantum Auto-Scaling System: scales a trading engine to the "
        "hardware it runs on and to the market it trades.",
    )
    _log_level(parser, _env("QAS_LOG_LEVEL") or "INFO")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run", help="observer, decider and applier together (embedded bus by default)"
    )
    _common(run, kafka_required=False, metrics=True)
    run.add_argument(
        "--market",
        choices=["none", "sample"],
        default=_env("QAS_MARKET") or "none",
        help="sample: feed the shipped S&P 500 2007-2009 sample, looping, as the market when no "
        "engine publishes [env QAS_MARKET; none]",
    )
    run.add_argument(
        "--market-rate",
        type=_positive_float,
        default=_env_default("QAS_MARKET_RATE", _positive_float, 20.0),
        metavar="ROWS_PER_SECOND",
        help="pace of --market sample [env QAS_MARKET_RATE; 20]",
    )
    run.add_argument(
        "--json",
        action="store_true",
        default=_flag("QAS_JSON"),
        help="print one JSON object per line on stdout for every decision and apply result "
        "(field 'type': 'decision' or 'applied') [env QAS_JSON]",
    )

    for name, what in (
        ("observer", "publish hardware snapshots and sensor readings to Kafka"),
        ("decider", "consume inputs from Kafka and publish scaling decisions"),
        ("applier", "consume decisions from Kafka, enact them, serve metrics"),
    ):
        p = sub.add_parser(name, help=what)
        _common(p, kafka_required=True, metrics=name == "applier")
        p.add_argument(
            "--json",
            action="store_true",
            default=_flag("QAS_JSON"),
            help="print decisions/apply results as JSON lines [env QAS_JSON]",
        )

    rp = sub.add_parser(
        "replay", help="replay a price file (CSV, optionally .gz) through the pipeline"
    )
    _replay_args(rp)
    rp.add_argument(
        "--json",
        action="store_true",
        default=_flag("QAS_JSON"),
        help="one JSON line per decision (type, input_time, inputs, fields) and apply result",
    )
    rp.add_argument(
        "--bootstrap-servers",
        type=_bootstrap,
        default=_env_default("QAS_BOOTSTRAP_SERVERS", _bootstrap, None),
        metavar="HOST:PORT",
        help="replay through Kafka [env QAS_BOOTSTRAP_SERVERS; default: embedded bus]",
    )
    rp.add_argument(
        "--host-id", default=_env("QAS_HOST_ID") or "", help="host id [env QAS_HOST_ID]"
    )

    rep = sub.add_parser("report", help="replay a price file and draw what QAS did (PNG or HTML)")
    _replay_args(rep)
    rep.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="report.png or report.html"
    )
    rep.add_argument(
        "--host-id", default=_env("QAS_HOST_ID") or "", help="host id [env QAS_HOST_ID]"
    )

    hw = sub.add_parser("hardware", help="what the observer sees on this machine")
    hw.add_argument("--json", action="store_true", default=_flag("QAS_JSON"), help="JSON output")
    hw.add_argument(
        "--host-id", default=_env("QAS_HOST_ID") or "", help="host id [env QAS_HOST_ID]"
    )

    dec = sub.add_parser("decide", help="one decision for this machine, with its reasons")
    dec.add_argument("--entropy", type=_unit_float, required=True, help="market entropy in [0, 1]")
    dec.add_argument(
        "--thermal",
        type=_unit_float,
        default=None,
        help="thermal state in [0, 1] (default: measured on this machine)",
    )
    dec.add_argument("--profit", type=_unit_float, required=True, help="profit potential in [0, 1]")
    dec.add_argument("--json", action="store_true", default=_flag("QAS_JSON"), help="JSON output")
    dec.add_argument(
        "--host-id", default=_env("QAS_HOST_ID") or "", help="host id [env QAS_HOST_ID]"
    )
    for p in sub.choices.values():  # accepted after the subcommand too; SUPPRESS keeps the top's
        _log_level(p, argparse.SUPPRESS)
    return parser


def _options(args: argparse.Namespace) -> Options:
    settings = Settings(sensor_interval_seconds=getattr(args, "sensor_interval", 1.0))
    metrics_port = getattr(args, "metrics_port", None)
    if getattr(args, "no_metrics", False):
        metrics_port = None
    return Options(
        bootstrap_servers=getattr(args, "bootstrap_servers", None),
        duration=getattr(args, "duration", None),
        json=getattr(args, "json", False),
        metrics_port=metrics_port,
        metrics_addr=getattr(args, "metrics_addr", "127.0.0.1"),
        host_id=args.host_id,
        connect_timeout=getattr(args, "connect_timeout", 30.0),
        settings=settings,
        cgroup=getattr(args, "cgroup", None),
        cgroup_cpu=getattr(args, "cgroup_cpu", None),
        target_pid=getattr(args, "target_pid", None),
        gpu_power_limit=getattr(args, "gpu_power_limit", False),
        dry_run=getattr(args, "dry_run", False),
        market=getattr(args, "market", "none"),
        market_rate=getattr(args, "market_rate", 20.0),
    )


def _cmd_run(args: argparse.Namespace, which: tuple[str, ...]) -> int:
    opts = _options(args)
    sink = JsonLines() if opts.json else None
    stats = asyncio.run(run_services(opts, which, sink=sink))
    logging.getLogger("qas").info("stopped cleanly: %s", json.dumps(stats, sort_keys=True))
    return 0


def _cmd_hardware(args: argparse.Namespace) -> int:
    from app.report_text import hardware_table

    opts = _options(args)
    probe = make_probe(opts)
    snap = probe.snapshot()
    reading = probe.sample()
    if args.json:
        out = {"hardware": msgspec.to_builtins(snap), "sensors": msgspec.to_builtins(reading)}
        print(json.dumps(out, indent=2))
    else:
        print(hardware_table(snap, reading))
    return 0


def _cmd_decide(args: argparse.Namespace) -> int:
    from core.quantum_auto_scaler import QuantumAutoScaler

    scaler = QuantumAutoScaler(host_id=args.host_id or None)
    thermal = args.thermal if args.thermal is not None else scaler.measured_thermal_state()
    d = scaler.compute_quantum_scaling(
        market_entropy=args.entropy, thermal_state=thermal, profit_potential=args.profit
    )
    if args.json:
        print(json.dumps({"type": "decision", **msgspec.to_builtins(d)}, indent=2))
        return 0
    print(
        f"scaling factor {d.scaling_factor:.3f}   memory x{d.memory_adjustment:.2f} "
        f"({d.memory_budget_bytes / 2**30:.2f} GiB budget)   precision {d.precision_tier}\n"
        f"batch {d.batch_size}   workers {d.workers}   confidence {d.confidence:.2f}   "
        f"state {d.quantum_state}   coherence {d.coherence_score:.3f}"
    )
    print("why:")
    for reason in d.reasons:
        print(f"  - {reason}")
    return 0


def _load_for_replay(args: argparse.Namespace) -> tuple[Any, str]:
    from shared.csvseries import read_series
    from shared.data import SAMPLE

    path = SAMPLE if str(args.csv) == "sample" else args.csv
    if not path.exists():
        raise CliError(f"no such file: {path}")
    try:
        series = read_series(path, args.time_column, args.price_column)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise CliError(f"{path}: {exc}") from None
    log = logging.getLogger("qas.replay")
    log.info("%s: %s layout, time %r, price %r; %s", path.name, series.layout, series.time_column,
             series.price_column, series.summary())  # fmt: skip
    if series.skipped:
        print(f"skipped rows in {path.name}: {series.summary()}", file=sys.stderr)
    if series.prices.size < 2:
        raise CliError(f"{path}: fewer than two usable rows ({series.summary()})")
    symbol = args.symbol or path.name.split(".")[0]
    return series, symbol


def _cmd_replay(args: argparse.Namespace) -> int:
    from app.replay import Progress, replay

    series, symbol = _load_for_replay(args)
    opts = _options(args)
    sink = JsonLines() if args.json else None
    result = asyncio.run(replay(opts, series, speed=args.speed, symbol=symbol, sink=sink,
                                progress=Progress(series.prices.size)))  # fmt: skip
    print(f"replayed {series.prices.size} rows: {len(result.decisions)} decisions, "
          f"{result.applied} applied", file=sys.stderr)  # fmt: skip
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from app.replay import Progress, replay
    from app.report_plot import write_report

    suffix = args.output.suffix.lower()
    if suffix not in (".png", ".html"):
        raise CliError(f"--output must end in .png or .html, got {args.output.name!r}")
    series, symbol = _load_for_replay(args)
    result = asyncio.run(replay(_options(args), series, speed=args.speed, symbol=symbol,
                                progress=Progress(series.prices.size)))  # fmt: skip
    write_report(result, args.output, title=f"QAS replay of {symbol}")
    print(f"wrote {args.output} ({len(result.decisions)} decisions over {series.prices.size} rows)",
          file=sys.stderr)  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    code = EXIT_RUNTIME
    try:
        code = _dispatch(args)
    except* CliError as group:
        print(f"error: {group.exceptions[0]}", file=sys.stderr)
        code = EXIT_USAGE
    except* BusError as group:
        print(f"error: {group.exceptions[0]}", file=sys.stderr)
    except* OSError as group:  # e.g. the metrics port is taken
        print(f"error: {group.exceptions[0]}", file=sys.stderr)
    except* KeyboardInterrupt:
        code = 130
    return code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _cmd_run(args, ("observer", "decider", "applier"))
    if args.command in ("observer", "decider", "applier"):
        return _cmd_run(args, (args.command,))
    if args.command == "hardware":
        return _cmd_hardware(args)
    if args.command == "replay":
        return _cmd_replay(args)
    if args.command == "report":
        return _cmd_report(args)
    return _cmd_decide(args)


if __name__ == "__main__":
    sys.exit(main())
