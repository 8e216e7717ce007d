"""Every command-line option, declared once: flag, type, default, help, QAS_* variable, commands.

``add_options`` generates the argparse arguments of a subcommand from ``OPTIONS``; the
environment is read through the same declaration (a flag wins over its variable, the variable
over the default), and ``default`` is what ``app.runtime.Options`` uses when nothing is given.
A new option is one ``Opt`` here plus the code that reads it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.hostfilter import HostFilter, HostFilterError, parse_hosts

# Subcommand groups an option belongs to.
SERVICES = ("run", "observer", "decider", "applier")
KAFKA_ONLY = ("observer", "decider", "applier")  # --bootstrap-servers is required there
ENACTING = ("run", "applier")
REPLAYING = ("replay", "report")
BROKER = (*SERVICES, *REPLAYING, "top")  # everything that may talk to Kafka
SIGNING = ("run", "decider", "applier", *REPLAYING, "top")
TOP = ("top",)  # qas top: on Kafka it only watches; embedded it runs the pipeline it shows


class OptionError(Exception):
    """A bad value in the environment: one line naming the variable."""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number: {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def unit_float(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1]: {text!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0 picks a free one): {text!r}")
    return value


def partitions(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"must be 1-1024: {text!r}")
    return value


def bootstrap(text: str) -> str:
    for server in text.split(","):
        host, sep, number = server.strip().rpartition(":")
        if not sep or not host or not number.isdigit() or not 0 < int(number) < 65536:
            raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT...], got {text!r}")
    return text


def hosts(text: str) -> HostFilter:
    """``--hosts``: host ids and globs, comma-separated, or ``@FILE`` with one or more a line."""
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]!r}: {exc}") from None
    try:
        return parse_hosts(source)
    except HostFilterError as exc:
        raise argparse.ArgumentTypeError(f"{exc}: {text[:80]!r}") from None


def speed(text: str) -> float | None:
    if text.lower() == "max":
        return None
    return positive_float(text)


def boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


@dataclass(frozen=True)
class Opt:
    flag: str
    help: str
    commands: tuple[str, ...]
    type: Callable[[str], Any] = str
    default: Any = None
    env: str | None = None  # QAS_* variable; None: flag only
    switch: bool = False  # store_true
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    required_in: tuple[str, ...] = ()  # commands where it must be given (flag or variable)
    short: str | None = None
    positional: bool = False
    command_defaults: tuple[tuple[str, Any], ...] = ()  # (command, default) where it differs

    def default_in(self, command: str) -> Any:
        return dict(self.command_defaults).get(command, self.default)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def env_value(self, command: str = "") -> Any:
        """The variable's value converted, or the default; OptionError names the variable."""
        raw = os.environ.get(self.env) if self.env else None
        if raw in (None, ""):
            return self.default_in(command)
        try:
            value = boolean(raw) if self.switch else self.type(raw)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise OptionError(f"environment variable {self.env}: {exc}") from None
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"environment variable {self.env}: expected one of "
                              f"{', '.join(self.choices)}, got {raw!r}")  # fmt: skip
        return value

    def help_text(self) -> str:
        note = []
        if self.env:
            note.append(f"env {self.env}")
        if not self.switch and self.default not in (None, "") and not self.positional:
            note.append(f"default {self.default}")
        for command, value in self.command_defaults:
            note.append(f"{command}: {value}")
        return self.help + (f" [{'; '.join(note)}]" if note else "")


OPTIONS: tuple[Opt, ...] = (
    # Where and who.
    Opt("--bootstrap-servers", "Kafka bootstrap servers; omitted: the embedded in-process bus "
        "(no broker needed) where the command allows it",
        (*SERVICES, *REPLAYING, *TOP), bootstrap, None, "QAS_BOOTSTRAP_SERVERS",
        metavar="HOST:PORT",
        required_in=KAFKA_ONLY),
    Opt("--host-id", "host id used as the message key (default: the hostname)",
        (*SERVICES, *REPLAYING, *TOP, "hardware", "decide"), str, "", "QAS_HOST_ID"),
    Opt("--connect-timeout", "how long to retry an unreachable broker before giving up",
        (*SERVICES, *TOP), positive_float, 30.0, "QAS_CONNECT_TIMEOUT", metavar="SECONDS"),
    Opt("--fetch-max-wait-ms", "longest a Kafka fetch waits for data; Tansu holds every fetch this "
        "long, so it bounds latency there (docs/benchmarks.md: 10 ms cut Kafka p99 about 4x "
        "against 100 ms at the same throughput)",
        BROKER, positive_float, 10.0, "QAS_FETCH_MAX_WAIT_MS", metavar="MS"),
    Opt("--session-timeout", "Kafka consumer-group session timeout: a member silent this long "
        "(killed, hung) loses its partitions to the others; a fleet's failover takes about this "
        "plus the rejoin (docs/operations.md, \"A fleet of deciders\")",
        SERVICES, positive_float, 6.0, "QAS_SESSION_TIMEOUT", metavar="SECONDS"),
    Opt("--partitions", "partitions of each topic QAS creates (topics that exist keep theirs): "
        "the most deciders of one group that can share the hosts",
        SERVICES, partitions, 3, "QAS_PARTITIONS", metavar="N"),
    Opt("--sensor-interval", "seconds between sensor readings",
        (*SERVICES, *TOP), positive_float, 1.0, "QAS_SENSOR_INTERVAL", metavar="SECONDS"),
    Opt("--gc-interval", "seconds between full garbage collections: frees at once the cyclic "
        "garbage a broker fault leaves (aiokafka's retried requests), which CPython's own "
        "schedule can leave for several faults, stepping the resident size up "
        "(docs/reliability.md); 0: CPython's schedule only",
        SERVICES, non_negative_float, 60.0, "QAS_GC_INTERVAL", metavar="SECONDS"),
    Opt("--settings", "TOML file of tuning constants (sections [decision], [applier], [scores], "
        "[thermal] and top-level keys, named as in shared/config.py; what it leaves out keeps "
        "its default; an unknown key is an error); --sensor-interval, when given, wins over it",
        (*SERVICES, *REPLAYING, *TOP), Path, None, "QAS_SETTINGS", metavar="TOML"),
    Opt("--duration", "stop after this long (default: run until Ctrl-C/SIGTERM)",
        (*SERVICES, *TOP), positive_float, None, "QAS_DURATION", metavar="SECONDS"),
    Opt("--json", "print one JSON object per line on stdout for every decision (once it is "
        "published) and apply result (field 'type': 'decision' or 'applied')",
        (*SERVICES, "replay", "hardware", "decide"), env="QAS_JSON", switch=True, default=False),
    # Security: signed decisions (shared/signing.py) and the broker connection
    # (services/bus/security.py). The SASL password has no flag, so it never shows in `ps`.
    Opt("--signing-key-file", "the decider's private key file (`qas keygen PATH` writes PATH, "
        "mode 0600, and PATH.pub); without it `qas run` and replays use an ephemeral in-memory "
        "key", SIGNING, Path, None, "QAS_SIGNING_KEY_FILE", metavar="PATH"),
    Opt("--verify-key-file", "public key file the applier verifies decisions with (PATH.pub of "
        "`qas keygen PATH`; one key_id:ed25519-public:hex per line, all verify, for rotation)",
        ("applier",), Path, None, "QAS_VERIFY_KEY_FILE", metavar="PATH"),
    Opt("--legacy-hmac-keys", "migration window only: accept the previous release's HMAC key "
        "file as --signing-key-file (the decider signs with it, the applier verifies with it "
        "beside --verify-key-file); logs a warning (docs/upgrading.md)", SIGNING,
        env="QAS_LEGACY_HMAC_KEYS", switch=True, default=False),
    Opt("--state-dir", "directory for the applier's state file (its replay watermark per host, "
        "written with fsync and rename before each decision is acknowledged), so a restarted "
        "applier refuses a replayed decision without the broker's read-back", ENACTING, Path,
        None, "QAS_STATE_DIR", metavar="DIR"),
    Opt("--insecure-unsigned", "decider: publish unsigned decisions; applier: enact decisions "
        "without checking signatures (anyone who can write to the decisions topic then controls "
        "this host)", ("decider", "applier"), env="QAS_INSECURE_UNSIGNED", switch=True,
        default=False),
    Opt("--security-protocol", "how to talk to Kafka", BROKER, str, "PLAINTEXT",
        "QAS_SECURITY_PROTOCOL", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
    Opt("--ssl-cafile", "CA certificate(s) that signed the broker's certificate (default: the "
        "system's)", BROKER, Path, None, "QAS_SSL_CAFILE", metavar="PEM"),
    Opt("--ssl-certfile", "client certificate, for brokers that require mutual TLS", BROKER, Path,
        None, "QAS_SSL_CERTFILE", metavar="PEM"),
    Opt("--ssl-keyfile", "the client certificate's private key (if not inside --ssl-certfile)",
        BROKER, Path, None, "QAS_SSL_KEYFILE", metavar="PEM"),
    Opt("--sasl-mechanism", "SASL mechanism", BROKER, str, None, "QAS_SASL_MECHANISM",
        choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")),
    Opt("--sasl-username", "SASL user name", BROKER, str, None, "QAS_SASL_USERNAME",
        metavar="NAME"),
    Opt("--sasl-password-file", "file holding the SASL password (else the QAS_SASL_PASSWORD "
        "variable; there is no password flag)", BROKER, Path, None, "QAS_SASL_PASSWORD_FILE",
        metavar="PATH"),
    Opt("--hosts", "track only these hosts: host ids and globs, comma-separated ('web-*,db-1'), "
        "or @FILE (one or more a line, # comments); other hosts' inputs are counted and "
        "dropped. qas run tracks its own host only unless given this ('*': every host); "
        "docs/reliability.md", ("run", "decider"), hosts, None, "QAS_HOSTS",
        metavar="GLOBS|@FILE"),
    # Metrics.
    Opt("--metrics-per-host", "decider: serve per-host series (all), or only the fleet "
        "aggregates (none), for a decider of thousands of hosts (docs/operations.md, fleet "
        "sizing)", ("run", "decider"), str, "all", "QAS_METRICS_PER_HOST",
        choices=("all", "none")),
    Opt("--metrics-port", "serve Prometheus /metrics on this port (0: a free one; qas run serves "
        "one page for its three services)", SERVICES, port, 9464, "QAS_METRICS_PORT",
        metavar="PORT", command_defaults=(("decider", 9465), ("observer", 9466))),
    Opt("--metrics-addr", "address for /metrics", SERVICES, str, "127.0.0.1", "QAS_METRICS_ADDR",
        metavar="ADDR"),
    Opt("--no-metrics", "do not serve /metrics", SERVICES, env="QAS_NO_METRICS", switch=True,
        default=False),
    # Actuators: all off until configured.
    Opt("--cgroup", "enact memory/CPU limits on this cgroup directory (v2, or the v1 memory "
        "cgroup); off by default", ENACTING, Path, None, "QAS_CGROUP", metavar="DIR"),
    Opt("--cgroup-cpu", "cgroup v1 only: the cpu controller's directory", ENACTING, Path, None,
        "QAS_CGROUP_CPU", metavar="DIR"),
    Opt("--target-pid", "set CPU affinity and niceness of this process; off by default",
        ENACTING, int, None, "QAS_TARGET_PID", metavar="PID"),
    Opt("--gpu-power-limit", "set NVIDIA power limits through NVML (needs root); off by default",
        ENACTING, env="QAS_GPU_POWER_LIMIT", switch=True, default=False),
    Opt("--dry-run", "actuators report what they would do and change nothing", ENACTING,
        env="QAS_DRY_RUN", switch=True, default=False),
    # The demo market.
    Opt("--market", "sample: feed the shipped S&P 500 2007-2009 sample, looping, as the market "
        "when no engine publishes", ("run", *TOP), str, "none", "QAS_MARKET",
        choices=("none", "sample")),
    Opt("--market-rate", "pace of --market sample", ("run", *TOP), positive_float, 20.0,
        "QAS_MARKET_RATE", metavar="ROWS_PER_SECOND"),
    # Replay and report.
    Opt("csv", "price file: Yahoo OHLCV, FRED two-column, or pandas OHLCV; '.gz' is read too; "
        "'sample' is the S&P 500 2007-2009 sample shipped with QAS", REPLAYING, Path,
        metavar="CSV", positional=True),
    Opt("--speed", "rows spaced by their time gap divided by X (86400: a day a second); max: as "
        "fast as possible [default: max]", REPLAYING, speed, None, metavar="X|max"),
    Opt("--time-column", "the time column (default: detected)", REPLAYING, metavar="NAME"),
    Opt("--price-column", "the price column (default: detected)", REPLAYING, metavar="NAME"),
    Opt("--symbol", "symbol for the ticks (default: the file name)", REPLAYING),
    Opt("--output", "report.png or report.html", ("report",), Path, None, metavar="FILE",
        required_in=("report",), short="-o"),
    # Keys.
    Opt("key_file", "where to write the new private key (mode 0600; the public key goes to "
        "KEY_FILE.pub); neither may exist yet",
        ("keygen",), Path, metavar="KEY_FILE", positional=True),
    Opt("--key-id", "id of the new key (default: k + today's date + 4 random hex digits)",
        ("keygen",), str, None, metavar="ID"),
    # qas top.
    Opt("--host", "qas top: show this host only (default: every host seen)", TOP, str, "",
        "QAS_TOP_HOST", metavar="HOST_ID"),
    # One decision.
    Opt("--entropy", "market entropy in [0, 1]", ("decide",), unit_float, required_in=("decide",)),
    Opt("--thermal", "thermal state in [0, 1] (default: measured on this machine)", ("decide",),
        unit_float),
    Opt("--profit", "profit potential in [0, 1]", ("decide",), unit_float,
        required_in=("decide",)),
)  # fmt: skip

LOG_LEVEL = Opt("--log-level", "log level; logs go to stderr", (), str.upper, "INFO",
                "QAS_LOG_LEVEL", choices=("DEBUG", "INFO", "WARNING", "ERROR"))  # fmt: skip

VERSION = Opt(
    "--version",
    "print the installed version and exit (`qas --version`)",
    (),
    switch=True,
    default=False,
)
DISTRIBUTION = "quantum-autoscaler"  # pyproject.toml's [project] name

BY_DEST: dict[str, Opt] = {o.dest: o for o in OPTIONS}


def package_version() -> str:
    """The installed version (pyproject.toml's), or a line saying it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed: run make run or pip install -e .)"


def add_version(p: argparse.ArgumentParser) -> None:
    """``qas --version`` on the top parser."""
    p.add_argument(VERSION.flag, action="version", version=f"qas {package_version()}",
                   help=VERSION.help)  # fmt: skip


def default(dest: str) -> Any:
    """The declared default of an option, for code that runs without a command line."""
    return BY_DEST[dest].default


def add_options(p: argparse.ArgumentParser, command: str) -> None:
    """Every option of ``command``, with its environment variable as the default."""
    for o in OPTIONS:
        if command not in o.commands:
            continue
        if o.positional:
            p.add_argument(o.dest, type=o.type, metavar=o.metavar, help=o.help_text())
            continue
        names = [o.short, o.flag] if o.short else [o.flag]
        value = o.env_value(command)
        required = command in o.required_in and (value is None)
        if o.switch:
            p.add_argument(*names, action="store_true", default=value, help=o.help_text())
        else:
            p.add_argument(
                *names, type=o.type, default=value, required=required, metavar=o.metavar,
                choices=o.choices, help=o.help_text(),
            )  # fmt: skip


def add_log_level(p: argparse.ArgumentParser, top: bool) -> None:
    """On the top parser with its variable; on subcommands too (SUPPRESS keeps the top's)."""
    o = LOG_LEVEL
    p.add_argument(
        o.flag, type=o.type, choices=o.choices, help=o.help_text(),
        default=(o.env_value() if top else argparse.SUPPRESS),
    )  # fmt: skip


def options_markdown() -> str:
    """The option reference in docs/cli.md, from ``OPTIONS``."""
    rows = ["| option | variable | default | commands | meaning |", "|---|---|---|---|---|"]
    for o in (*OPTIONS, LOG_LEVEL, VERSION):
        if o.positional:
            continue
        flag = f"`{o.short}`, `{o.flag}`" if o.short else f"`{o.flag}`"
        shown = "off" if o.switch else ("-" if o.default in (None, "") else f"{o.default}")
        if o.command_defaults:
            shown += "".join(f" ({c}: {v})" for c, v in o.command_defaults)
        commands = ", ".join(o.commands) or "all"
        meaning = o.help.replace("|", "\\|")
        rows.append(f"| {flag} | {f'`{o.env}`' if o.env else '-'} | {shown} | {commands} | "
                    f"{meaning} |")  # fmt: skip
    return "\n".join(rows)
