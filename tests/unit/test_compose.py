"""compose.yaml, docker/plant.yaml and docker/Dockerfile fit together, checked without a Docker engine.

Each check is a function returning the problems it finds, so the tests below can also show that
it reports a broken copy of the file (a check that cannot fail proves nothing).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
PLANT = ROOT / "docker" / "plant.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DATASOURCE = ROOT / "docker" / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"

SERVICES = {"simulator", "mosquitto", "kafka", "collect", "process", "sink", "influxdb", "grafana"}
ROLES = {"collect", "process", "sink"}
# ${NAME}, ${NAME:-default}, ${NAME:?message} (compose); the plant loader knows the first two.
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def compose() -> dict[str, Any]:
    data = load(COMPOSE)
    assert isinstance(data, dict)
    return data


def strings(value: Any) -> Iterator[str]:
    """Every string value in a parsed YAML document (comments are not values)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def required_variables(document: Any) -> set[str]:
    """The ${VAR}s of a document that have no default."""
    return {
        m.group(1)
        for text in strings(document)
        for m in ENV_REF.finditer(text)
        if m.group(2) in (None, ":?", "?")
    }


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def option(command: list[str], *names: str) -> str | None:
    for i, part in enumerate(command[:-1]):
        if part in names:
            return command[i + 1]
    return None


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source of each volume of a service."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        out[target] = source
    return out


def image_workdir() -> str:
    """The working directory the Dockerfile leaves the image in."""
    workdirs = re.findall(r"(?m)^WORKDIR\s+(\S+)", DOCKERFILE.read_text())
    return workdirs[-1]


def role_of(service: dict[str, Any]) -> str | None:
    command = command_of(service)
    return command[0] if command and command[0] in ROLES | {"run"} else None


# --- the checks ----------------------------------------------------------------------------------


def environment_problems(compose: dict[str, Any], plant: dict[str, Any]) -> list[str]:
    """Roles whose environment lacks a variable their plant file needs."""
    needed = required_variables(plant)
    tokens = {sink["token_env"] for sink in plant.get("sinks", []) if "token_env" in sink}
    problems = []
    for name, service in compose["services"].items():
        role = role_of(service)
        if role is None:
            continue
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: write environment as a mapping"
        wanted = needed | (tokens if role in {"sink", "run"} else set())
        problems += [f"{name}: environment lacks {var}" for var in sorted(wanted - env.keys())]
    return problems


def state_volume_problems(compose: dict[str, Any]) -> list[str]:
    """Roles without a declared named volume at their --state-dir, and undeclared named volumes."""
    declared = set(compose.get("volumes") or {})
    problems = []
    for name, service in compose["services"].items():
        for target, source in mounts(service).items():
            if not source.startswith((".", "/")) and source not in declared:
                problems.append(f"{name}: volume {source!r} (at {target}) is not declared under volumes:")
        if role_of(service) is None:
            continue
        # Without --state-dir a role keeps what it writes in its working directory.
        state_dir = option(command_of(service), "--state-dir") or service.get("working_dir", image_workdir())
        if mounts(service).get(state_dir) not in declared:
            problems.append(f"{name}: the state dir {state_dir} is not a declared named volume")
    return problems


def dependency_problems(compose: dict[str, Any]) -> list[str]:
    services = compose["services"]
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for other in depends if isinstance(depends, (dict, list)) else []:
            if other not in services:
                problems.append(f"{name}: depends on unknown service {other!r}")
            elif (
                isinstance(depends, dict)
                and depends[other].get("condition") == "service_healthy"
                and "healthcheck" not in services[other]
            ):
                problems.append(f"{name}: waits for {other} to be healthy, which has no health check")
    return problems


def service_problems(compose: dict[str, Any]) -> list[str]:
    problems = [f"missing service {name!r}" for name in sorted(SERVICES - compose["services"].keys())]
    for name, service in compose["services"].items():
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        check = service.get("healthcheck", {})
        if not check.get("test") or check.get("disable"):
            problems.append(f"{name}: no health check")
        if service.get("restart") not in {"always", "unless-stopped", "on-failure"}:
            problems.append(f"{name}: no restart policy")
    return problems


# --- tests ---------------------------------------------------------------------------------------


def test_the_files_parse(compose: dict[str, Any]) -> None:
    assert isinstance(load(PLANT), dict)
    assert set(compose["services"]) == SERVICES


def test_services_have_images_health_checks_and_restart_policies(compose: dict[str, Any]) -> None:
    assert service_problems(compose) == []


def test_roles_get_every_variable_their_plant_file_needs(compose: dict[str, Any]) -> None:
    plant = load(PLANT)
    # The file really has such variables, among them the agreed sink and kafka keys.
    assert {"INFLUX_URL", "INFLUX_ORG", "INFLUX_BUCKET", "KAFKA_BOOTSTRAP"} <= required_variables(plant)
    assert environment_problems(compose, plant) == []
    for name in ROLES:
        service = compose["services"][name]
        command = command_of(service)
        assert mounts(service)[option(command, "-c", "--config") or ""] == "./docker/plant.yaml", name


def test_only_the_sink_holds_the_token(compose: dict[str, Any]) -> None:
    holders = {name for name, s in compose["services"].items() if "INFLUX_TOKEN" in s.get("environment", {})}
    assert holders == {"sink", "grafana"}


def test_a_missing_variable_is_reported(compose: dict[str, Any]) -> None:
    plant = load(PLANT)
    broken = copy.deepcopy(compose)
    del broken["services"]["process"]["environment"]["KAFKA_BOOTSTRAP"]
    del broken["services"]["sink"]["environment"]["INFLUX_TOKEN"]
    plant["sources"][0]["endpoint"] = "${PLC_HOST}"
    assert environment_problems(broken, plant) == [
        "collect: environment lacks PLC_HOST",
        "process: environment lacks KAFKA_BOOTSTRAP",
        "process: environment lacks PLC_HOST",
        "sink: environment lacks INFLUX_TOKEN",
        "sink: environment lacks PLC_HOST",
    ]


def test_state_directories_are_named_volumes(compose: dict[str, Any]) -> None:
    assert state_volume_problems(compose) == []
    broken = copy.deepcopy(compose)
    del broken["volumes"]["sink-state"]
    broken["services"]["process"]["volumes"] = ["./docker/plant.yaml:/etc/plantstream/plant.yaml:ro"]
    assert state_volume_problems(broken) == [
        "process: the state dir /var/lib/plantstream is not a declared named volume",
        "sink: volume 'sink-state' (at /var/lib/plantstream) is not declared under volumes:",
        "sink: the state dir /var/lib/plantstream is not a declared named volume",
    ]


def test_dependencies_exist_and_have_health_checks(compose: dict[str, Any]) -> None:
    assert dependency_problems(compose) == []
    broken = copy.deepcopy(compose)
    broken["services"]["sink"]["depends_on"]["influx"] = {"condition": "service_started"}
    del broken["services"]["kafka"]["healthcheck"]
    problems = dependency_problems(broken)
    assert "sink: depends on unknown service 'influx'" in problems
    assert "collect: waits for kafka to be healthy, which has no health check" in problems
    assert "kafka: no health check" in service_problems(broken)


def test_compose_variables_are_in_the_env_example(compose: dict[str, Any]) -> None:
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    used = {m.group(1) for text in strings(compose) for m in ENV_REF.finditer(text)}
    assert used <= example.keys(), f"not in .env.example: {used - example.keys()}"
    assert required_variables(compose) <= {
        "INFLUX_ORG",
        "INFLUX_BUCKET",
        "INFLUX_TOKEN",
        "INFLUX_ADMIN_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    }


def test_simulator_serves_the_network_and_publishes_meters(compose: dict[str, Any]) -> None:
    command = command_of(compose["services"]["simulator"])
    assert command[0] == "simulate"
    assert option(command, "--host") == "0.0.0.0"
    assert option(command, "--mqtt") == "mqtt://mosquitto:1883"
    env = compose["services"]["collect"]["environment"]
    assert env["MQTT_URL"] == "mqtt://mosquitto:1883"
    assert env["OPCUA_ENDPOINT"].startswith("opc.tcp://simulator:")


def test_grafana_is_provisioned_for_anonymous_viewers(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert mounts(grafana)["/etc/grafana/provisioning"] == "./docker/grafana/provisioning"
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert required_variables(load(DATASOURCE)) <= env.keys()
    init = compose["services"]["influxdb"]["environment"]
    assert init["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert init["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"].startswith("${INFLUX_TOKEN")


def test_ports_are_published_on_loopback_except_grafana(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if name == "grafana":
                assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), port
            else:
                assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_kafka_runs_kraft_with_one_node(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert compose["services"]["collect"]["environment"]["KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_dockerfile_runs_unprivileged_with_a_healthz_check() -> None:
    text = DOCKERFILE.read_text()
    instructions = [
        line.split(None, 1) for line in re.sub(r"\\\n", " ", text).splitlines() if line and line[0] != "#"
    ]
    users = [args.strip() for word, args in instructions if word == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    (check,) = [args for word, args in instructions if word == "HEALTHCHECK"]
    assert "urllib.request" in check
    assert "/healthz" in check
    assert "curl" not in check
    assert any(
        word == "FROM" and args.startswith("python:") and "slim" in args for word, args in instructions
    )
