"""--fetch-max-wait-ms reaches every Kafka consumer QAS builds (flag, variable, default)."""

from __future__ import annotations

import pytest

from app.cli import CliError, _options, build_parser
from app.runtime import make_bus
from services.bus.kafka import KafkaBus


def _bus(argv: list[str]) -> KafkaBus:
    bus = make_bus(_options(build_parser().parse_args(argv)))
    assert isinstance(bus, KafkaBus)
    return bus


def test_fetch_wait_flag_variable_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["decider", "--bootstrap-servers", "127.0.0.1:9092"]
    assert _bus(base).fetch_max_wait == pytest.approx(0.010)  # the measured default
    assert _bus([*base, "--fetch-max-wait-ms", "250"]).fetch_max_wait == pytest.approx(0.250)
    monkeypatch.setenv("QAS_FETCH_MAX_WAIT_MS", "40")
    assert _bus(base).fetch_max_wait == pytest.approx(0.040)
    assert _bus([*base, "--fetch-max-wait-ms", "5"]).fetch_max_wait == pytest.approx(0.005)
    with pytest.raises(CliError, match="fetch-max-wait-ms: must be a positive"):
        build_parser().parse_args([*base, "--fetch-max-wait-ms", "0"])
