"""`qas`: the command line. Every option also comes from a QAS_* environment variable; flags win.

Errors (a bad option or value, an unreachable broker) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from app.decision_lines import HumanLines, decision_text
from app.options import OptionError, add_log_level, add_options, add_version, default
from app.runtime import JsonLines, Options, make_probe, run_services
from services.bus.base import BusError
from services.bus.security import SecurityConfigError
from services.malloc import pin_malloc_thresholds
from shared.config import Settings, SettingsError, settings_from_toml
from shared.signing import KeyFileError

EXIT_USAGE = 2
EXIT_RUNTIME = 1

COMMANDS: dict[str, str] = {
    "run": "observer, decider and applier together (embedded bus by default)",
    "observer": "publish hardware snapshots and sensor readings to Kafka",
    "decider": "consume inputs from Kafka and publish scaling decisions",
    "applier": "consume decisions from Kafka, enact them, serve metrics",
    "replay": "replay a price file (CSV, optionally .gz) through the pipeline",
    "report": "replay a price file and draw what QAS did (PNG or HTML)",
    "hardware": "what the observer sees on this machine",
    "decide": "one decision for this machine, with its reasons",
    "keygen": "write a new decision signing key pair: PATH (private, mode 0600) and PATH.pub",
    "top": "live terminal view of decisions, inputs, pool, apply results, dead letters and lag "
    "(one summary line per second in a pipe)",
}


class CliError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        raise CliError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qas",
        description="QAS, the Quantum Auto-Scaling System: scales a trading engine to the "
        "hardware it runs on and to the market it trades.",
    )
    add_log_level(parser, top=True)
    add_version(parser)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, what in COMMANDS.items():
        p = sub.add_parser(name, help=what)
        add_options(p, name)
        add_log_level(p, top=False)
    return parser


def _options(args: argparse.Namespace) -> Options:
    """The runtime options from parsed arguments; what a command lacks keeps its default."""
    # --settings names a file; Options.settings holds what it says (_settings below).
    given = {k: v for k, v in vars(args).items()
             if k in Options.__dataclass_fields__ and k != "settings"}  # fmt: skip
    if getattr(args, "no_metrics", False):
        given["metrics_port"] = None
    return Options(settings=_settings(args), **given)


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from --settings (if given), with --sensor-interval over the file's value when
    the flag (or its variable) says something other than the default."""
    settings, in_file = Settings(), False
    path: Path | None = getattr(args, "settings", None)
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--settings {path}: cannot read it ({exc})") from None
        try:
            settings = settings_from_toml(text)
        except SettingsError as exc:
            raise CliError(f"--settings {path}: {exc}") from None
        in_file = settings.sensor_interval_seconds != Settings().sensor_interval_seconds
    interval = getattr(args, "sensor_interval", None)
    if interval is not None and (not in_file or interval != default("sensor_interval")):
        settings = msgspec.structs.replace(settings, sensor_interval_seconds=interval)
    return settings


def _cmd_run(args: argparse.Namespace, which: tuple[str, ...]) -> int:
    opts = _options(args)
    pin_malloc_thresholds()  # a long-running service: large records must not ratchet RSS up
    sink = JsonLines() if opts.json else HumanLines()
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
    print(decision_text(d))
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from app.keys import public_path, write_key_pair

    key = write_key_pair(args.key_file, args.key_id)
    pub = public_path(args.key_file)
    print(f"wrote key {key.key_id}: the private key to {args.key_file} (mode 0600), for the "
          f"decider alone (--signing-key-file); the public key to {pub}, for every applier and "
          "engine (--verify-key-file)", file=sys.stderr)  # fmt: skip
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
    failed = f", {result.results['failed']} failed" if result.results["failed"] else ""
    print(f"replayed {series.prices.size} rows: {len(result.decisions)} decisions, "
          f"{result.applied} applied, {result.results['skipped']} skipped{failed}",
          file=sys.stderr)  # fmt: skip
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from app.replay import Progress, replay
    from app.report_plot import write_report

    suffix = args.output.suffix.lower()
    if suffix not in (".png", ".html"):
        raise CliError(f"--output must end in .png or .html, got {args.output.name!r}")
    folder = args.output.parent
    if not folder.is_dir():  # checked before the replay, not after it
        raise CliError(f"--output: no such directory {str(folder)!r}; create it or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise CliError(f"--output: cannot write in {str(folder)!r}; pick a directory you can write")
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
    except (CliError, OptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from app.logs import setup

    setup(args.log_level)
    code = EXIT_RUNTIME
    try:
        code = _dispatch(args)
    except* (CliError, KeyFileError, SecurityConfigError) as group:
        print(f"error: {group.exceptions[0]}", file=sys.stderr)
        code = EXIT_USAGE
    except* BusError as group:
        print(f"error: {group.exceptions[0]}", file=sys.stderr)
    except* OSError as group:  # e.g. the metrics port is taken
        print(f"error: {_os_error(group.exceptions[0], args)}", file=sys.stderr)
    except* KeyboardInterrupt:
        code = 130
    return code


def _os_error(exc: BaseException, args: argparse.Namespace) -> str:
    """One line that names the thing and the fix."""
    port = getattr(args, "metrics_port", None)
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE and port is not None:
        addr = getattr(args, "metrics_addr", None) or "127.0.0.1"
        return (
            f"the metrics port {addr}:{port} is already in use (another qas?): pick another "
            f"with --metrics-port PORT (0 picks a free one), or run without metrics: --no-metrics"
        )
    return str(exc)


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
    if args.command == "keygen":
        return _cmd_keygen(args)
    if args.command == "top":
        from app.top import run_top

        return asyncio.run(run_top(_options(args), args.host or None))
    return _cmd_decide(args)


if __name__ == "__main__":
    sys.exit(main())
