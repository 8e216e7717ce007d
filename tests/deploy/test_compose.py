"""deploy/docker-compose.yml, which Docker cannot run here: valid against the Compose
Specification's schema, every mounted file present, every QAS command a real subcommand, and
Prometheus and Grafana pinned and wired to QAS's rules and dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from app.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMA = Path(__file__).parent / "compose_spec" / "compose-spec.json"


def compose() -> dict[str, object]:
    doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def services() -> dict[str, dict[str, object]]:
    s = compose()["services"]
    assert isinstance(s, dict)
    return s


def test_compose_file_is_valid_against_the_compose_specification_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(compose(), schema, cls=jsonschema.Draft7Validator)


def test_schema_validation_rejects_a_broken_service() -> None:
    schema = json.loads(SCHEMA.read_text())
    bad = compose()
    bad["services"]["grafana"]["ports"] = {"not": "a list"}  # type: ignore[index]
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(bad))
    assert errors


def test_every_bind_mounted_file_exists() -> None:
    mounts = 0
    for name, svc in services().items():
        for volume in svc.get("volumes", []):  # type: ignore[attr-defined]
            source = str(volume).split(":")[0]
            if not source.startswith("."):
                continue  # host paths such as /sys
            mounts += 1
            assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    assert mounts >= 5
    # The signing key is made by `qas keygen deploy/qas.key` and never committed.
    secret = compose()["secrets"]["qas_signing_key"]["file"]  # type: ignore[index]
    assert secret.endswith(".key") and "*.key" in (ROOT / ".gitignore").read_text()
    # The applier gets the public key only; the private one goes to the decider alone.
    public = compose()["secrets"]["qas_verify_key"]["file"]  # type: ignore[index]
    assert public == f"{secret}.pub"
    s = services()
    assert s["applier"]["secrets"] == ["qas_verify_key"]  # type: ignore[index]
    assert s["decider"]["secrets"] == ["qas_signing_key"]  # type: ignore[index]
    assert "QAS_SIGNING_KEY_FILE" not in s["applier"]["environment"]  # type: ignore[operator]


def test_every_qas_service_command_is_a_real_subcommand_with_valid_options() -> None:
    parser = build_parser()
    seen = set()
    for name, svc in services().items():
        command = svc.get("command")
        if not (isinstance(command, list) and command[0] == "qas"):
            continue
        assert command[1] in COMMANDS, f"{name}: qas {command[1]} is no subcommand"
        args = parser.parse_args([*command[1:], "--bootstrap-servers", "kafka:9092"])
        assert args.command == command[1]
        seen.add(command[1])
    assert seen == {"observer", "decider", "applier"}


def test_prometheus_and_grafana_are_pinned_and_provisioned() -> None:
    s = services()
    for name in ("prometheus", "grafana"):
        image = str(s[name]["image"])
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name} image not pinned: {image}"
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = prom_cfg["scrape_configs"][0]["static_configs"][0]["targets"]
    for target in targets:
        host, port = target.split(":")
        assert host in s, f"scrape target {target} is no compose service"
        command = s[host]["command"]
        assert isinstance(command, list) and "0.0.0.0" in command
        args = build_parser().parse_args([*command[1:], "--bootstrap-servers", "k:9092"])
        assert args.metrics_port == int(port), f"{host} serves on {args.metrics_port}"
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "qas.json").read_text())
    assert source["uid"] == board["panels"][1]["datasource"]["uid"]
    assert source["url"] == "http://prometheus:9090"
