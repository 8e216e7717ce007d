from __future__ import annotations

import argparse

import pytest

from app.cli import COMMANDS, build_parser
from app.options import OPTIONS, Opt, OptionError, add_options, positive_float


def test_every_option_belongs_to_a_real_command_and_is_in_its_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for o in OPTIONS:
        assert o.commands and set(o.commands) <= set(COMMANDS), o.flag
        for command in o.commands:
            text = sub.choices[command].format_help()
            assert (o.metavar or o.dest) in text if o.positional else o.flag in text
            if o.env:
                assert o.env in text, (command, o.flag)


def test_environment_value_is_the_default_and_a_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QAS_DURATION", "7")
    p = argparse.ArgumentParser()
    add_options(p, "run")
    assert p.parse_args([]).duration == 7.0
    assert p.parse_args(["--duration", "2"]).duration == 2.0


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    opt = Opt("--x", "x", ("run",), positive_float, 1.0, "QAS_X_TEST")
    monkeypatch.setenv("QAS_X_TEST", "-1")
    with pytest.raises(OptionError, match="QAS_X_TEST: must be a positive"):
        opt.env_value()
    monkeypatch.setenv("QAS_X_TEST", "")
    assert opt.env_value() == 1.0


def test_required_option_is_satisfied_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    p = argparse.ArgumentParser()
    add_options(p, "observer")
    with pytest.raises(SystemExit):
        p.parse_args([])
    monkeypatch.setenv("QAS_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    p = argparse.ArgumentParser()
    add_options(p, "observer")
    assert p.parse_args([]).bootstrap_servers == "127.0.0.1:9092"


def test_cli_reference_is_the_option_table() -> None:
    from pathlib import Path

    from app.options import options_markdown

    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    assert options_markdown() in page, "docs/cli.md's option table is stale: paste options_markdown()"


def test_each_service_has_its_own_default_metrics_port() -> None:
    ports = {}
    for command in ("run", "applier", "decider", "observer"):
        p = argparse.ArgumentParser()
        add_options(p, command)
        ports[command] = p.parse_args(["--bootstrap-servers", "h:9092"]).metrics_port
    assert ports == {"run": 9464, "applier": 9464, "decider": 9465, "observer": 9466}
