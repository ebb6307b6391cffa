"""docker/compose.yaml agrees with the code: there is no Docker engine here to run it, so the
file is read and every service is checked against what the bus expects of it.

Each check is a function that returns the problems it finds; the tests assert there are none
in the shipped files, and that a broken copy of them is caught (so a check cannot pass by
finding nothing to look at).
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from bus.brokers.amqp import node_urls
from bus.cli import main
from bus.routing.loader import load_routes
from bus.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
CONFIG_IN_CONTAINER = "/etc/renkei/renkei.toml"
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _settings(env: dict[str, str] | None = None) -> Settings:
    return Settings.load(DOCKER / "renkei.toml", env=env or {})


def _interpolate(value: str) -> str:
    """What compose makes of ${VAR}, ${VAR:?msg}, ${VAR:-default}, with a stand-in for VAR."""
    return _VARIABLE.sub(lambda m: f"{m.group(1).lower()}-0123456789abcdef", value)


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def _parse(args: list[str]) -> tuple[str, dict[str, Any]]:
    """(subcommand, its parsed options) of `renkei ARGS`, parsed by the real CLI (not run)."""
    name, rest = args[0], args[1:]
    command = main.get_command(click.Context(main), name)
    if command is None:
        raise click.UsageError(f"renkei has no command {name!r}")
    context = command.make_context(name, list(rest))
    return name, dict(context.params)


def _rabbits(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if str(s.get("image", "")).startswith("rabbitmq:")}


def _bus_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if _command(s)[:1] == ["run"]}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


# -- the checks ------------------------------------------------------------------------------


def simulator_problems(compose: dict[str, Any], settings: Settings) -> list[str]:
    """Every HTTP destination's URL names a simulator service that listens on the URL's port."""
    problems = []
    services = compose["services"]
    for name, destination in settings.destinations.items():
        url = urlsplit(str(destination.options.get("url", "")))
        service = services.get(url.hostname or "")
        if service is None:
            problems.append(f"{name}: no service {url.hostname!r} for {url.geturl()}")
            continue
        try:
            command, params = _parse(_command(service))
        except click.ClickException as exc:
            problems.append(f"{name}: service {url.hostname}: not a renkei command line ({exc.format_message()})")
            continue
        if command != "simulate" or params.get("system") != name:
            problems.append(f"{name}: service {url.hostname} runs {_command(service)}, not `simulate {name}`")
        if params.get("port") != (url.port or 80):
            problems.append(f"{name}: {url.hostname} listens on {params.get('port')}, the URL says {url.port}")
        if params.get("host") not in ("0.0.0.0", "::"):
            problems.append(f"{name}: {url.hostname} listens on {params.get('host')}: other containers cannot reach it")
        if url.path.rstrip("/") != "/messages":
            problems.append(f"{name}: the simulators take POST /messages, the URL says {url.path}")
    return problems


def _replicas(service: dict[str, Any]) -> int:
    return int(service.get("deploy", {}).get("replicas", 1))


def bus_service_problems(compose: dict[str, Any], settings: Settings) -> list[str]:
    """Bus services run valid `renkei run` command lines with the mounted config; one router
    service; every configured destination is delivered by exactly one service. A service runs
    N-way (replicas, or `--scale`) only with what keeps order and duplicates across its
    processes: sharded queues, a shard group per process, and the state in the shared store;
    and nothing pins it to one container (no container_name, no fixed host port but a range)."""
    problems = []
    routers, delivered_by = [], {}
    for name, service in _bus_services(compose).items():
        try:
            _, params = _parse(_command(service))
        except click.ClickException as exc:
            problems.append(f"{name}: `renkei {' '.join(_command(service))}`: {exc.format_message()}")
            continue
        if str(params["config"]) != CONFIG_IN_CONTAINER:
            problems.append(f"{name}: --config {params['config']}, the config is mounted at {CONFIG_IN_CONTAINER}")
        mounts = [str(v) for v in service.get("volumes", [])]
        if not any(v.startswith("./renkei.toml:" + CONFIG_IN_CONTAINER) for v in mounts):
            problems.append(f"{name}: does not mount ./renkei.toml at {CONFIG_IN_CONTAINER}")
        if params["with_simulators"]:
            problems.append(f"{name}: --with-simulators: the simulators are services of their own")
        env = {k: _interpolate(v) for k, v in _environment(service).items()}
        mine = _settings(env)
        if not str(mine.state.store or "").startswith("postgresql://"):
            problems.append(f"{name}: its state is on its own disk: set RENKEI_STATE_STORE (the shared store)")
        if mine.bus.shards < 2 or not params["shard_group"]:
            problems.append(f"{name}: N processes need [bus] shards > 1 and --shard-group (shards "
                            f"{mine.bus.shards}, group {params['shard_group']})")
        if "container_name" in service:
            problems.append(f"{name}: container_name pins it to one container: it cannot be scaled")
        replicas = _replicas(service)
        for port in service.get("ports", []):
            host = str(port).rsplit(":", 1)[0].rsplit(":", 1)[-1]
            first, _, last = host.partition("-")
            if int(last or first) - int(first) + 1 < replicas:
                problems.append(f"{name}: {replicas} replicas, but host port {host} is one for all of them")
        if params["role"] in ("all", "router"):
            routers.append(name)
        if params["role"] in ("all", "deliver"):
            for destination in params["destinations"] or settings.destinations:
                if destination not in settings.destinations:
                    problems.append(f"{name}: --destination {destination} is not in renkei.toml")
                delivered_by.setdefault(destination, []).append(name)
    if len(routers) != 1:
        problems.append(f"exactly one service must run the intake and router, found {routers}")
    for destination in settings.destinations:
        workers = delivered_by.get(destination, [])
        if len(workers) != 1:
            problems.append(f"destination {destination} must be delivered by one service, found {workers}")
    return problems


def broker_problems(compose: dict[str, Any], settings: Settings) -> list[str]:
    """Every broker URL (the config's and each bus service's RENKEI_BROKER_URL) names a
    RabbitMQ service of the cluster on its AMQP port."""
    rabbits = _rabbits(compose)
    hosts = {name for name in rabbits} | {str(s.get("hostname")) for s in rabbits.values()}
    urls = [("renkei.toml [bus] broker_url", settings.bus.broker_url or "")]
    for name, service in _bus_services(compose).items():
        url = _environment(service).get("RENKEI_BROKER_URL")
        if url is None:
            urls.append((f"{name}: RENKEI_BROKER_URL", "(not set)"))
        else:
            urls.append((f"{name}: RENKEI_BROKER_URL", _interpolate(url)))
    problems = []
    for where, url in urls:
        nodes = [urlsplit(node) for node in node_urls(url)]
        if not nodes or any(p.scheme not in ("amqp", "amqps") or p.hostname not in hosts for p in nodes):
            problems.append(f"{where} = {url!r} does not name RabbitMQ services ({', '.join(sorted(rabbits))})")
        elif any((p.port or 5672) != 5672 for p in nodes):
            problems.append(f"{where} = {url!r}: the nodes listen on 5672")
        elif len({p.hostname for p in nodes}) != len(rabbits):
            problems.append(f"{where} = {url!r}: name every node, so the worker fails over to the others")
    return problems


def cluster_problems(compose: dict[str, Any]) -> list[str]:
    """Three RabbitMQ nodes, one Erlang cookie (from the environment), the consistent-hash
    plugin, the peer discovery list naming exactly these nodes, quorum group size 3."""
    rabbits = _rabbits(compose)
    problems = []
    if len(rabbits) != 3:
        problems.append(f"the cluster needs 3 RabbitMQ services, found {sorted(rabbits)}")
    cookies = {_environment(s).get("RABBITMQ_ERLANG_COOKIE") for s in rabbits.values()}
    if len(cookies) != 1 or None in cookies:
        problems.append(f"the nodes must share one Erlang cookie, found {len(cookies)} different")
    elif not _VARIABLE.fullmatch(str(next(iter(cookies)))):
        problems.append("the Erlang cookie must come from the environment (${...}), not the file")
    for name, service in rabbits.items():
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in service.get("volumes", []) if ":" in str(v)}
        plugins = mounts.get("/etc/rabbitmq/enabled_plugins")
        if plugins is None or "rabbitmq_consistent_hash_exchange" not in (DOCKER / plugins).read_text():
            problems.append(f"{name}: rabbitmq_consistent_hash_exchange is not in its enabled_plugins")
        conf = mounts.get("/etc/rabbitmq/rabbitmq.conf")
        if conf is None:
            problems.append(f"{name}: mounts no rabbitmq.conf")
            continue
        text = (DOCKER / conf).read_text()
        listed = set(re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+\s*=\s*(\S+)", text, re.MULTILINE))
        expected = {f"rabbit@{s.get('hostname')}" for s in rabbits.values()}
        if listed != expected:
            problems.append(f"{name}: peer discovery lists {sorted(listed)}, the services are {sorted(expected)}")
        advanced = mounts.get("/etc/rabbitmq/advanced.config")
        if advanced is None or not re.search(r"\{quorum_cluster_size,\s*3\}", (DOCKER / advanced).read_text()):
            problems.append(f"{name}: quorum queues must get 3 members (quorum_cluster_size 3 in advanced.config)")
    return problems


def secret_problems(compose: dict[str, Any]) -> list[str]:
    """No password, key or cookie is written in the compose file: each is ${...}."""
    problems = []
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            secret = re.search(r"PASS|PASSWORD|COOKIE|KEY$", key)
            if secret and not _VARIABLE.search(value):
                problems.append(f"{name}: {key} is written in the file")
            if "://" in value and "@" in value:
                password = urlsplit(_interpolate(value)).password
                if password and not _VARIABLE.search(value.split("@", 1)[0]):
                    problems.append(f"{name}: {key} carries a password written in the file")
    return problems


# -- the tests -------------------------------------------------------------------------------


def test_the_example_config_configures_every_destination_a_shipped_route_addresses() -> None:
    example = Settings.load(ROOT / "examples" / "renkei.toml", env={})
    assert {route.destination for route in load_routes()} <= set(example.destinations)


def test_the_docker_config_loads_with_the_bus_settings() -> None:
    settings = _settings()
    assert settings.bus.broker_url and settings.bus.broker_url.startswith("amqp://")
    assert settings.intake.http_host == "0.0.0.0"
    # every system a shipped route addresses, and the two national ones the togo simulator forwards to
    assert set(settings.destinations) == {route.destination for route in load_routes()} | {"chukan", "portal"}
    assert all(d.transport == "http" for d in settings.destinations.values())


def test_the_config_loads_with_each_bus_services_environment() -> None:
    for name, service in _bus_services(_compose()).items():
        env = {k: _interpolate(v) for k, v in _environment(service).items()}
        settings = _settings(env)
        assert settings.bus.broker_url == env["RENKEI_BROKER_URL"], name
        assert not settings.uses_development_key, f"{name}: runs with the development pseudonym key"
        assert str(settings.audit.store).startswith("postgresql://"), f"{name}: the audit trail must be shared"
        assert str(settings.state.store).startswith("postgresql://"), f"{name}: the state must be shared"
        assert settings.bus.shards > 1, f"{name}: the queues must be sharded for N processes"


def test_every_stage_runs_n_way_the_routers_and_each_delivery_service() -> None:
    services = _bus_services(_compose())
    replicas = {name: _replicas(service) for name, service in services.items()}
    assert replicas["router"] >= 2 and all(n >= 2 for n in replicas.values()), replicas


def test_every_destination_has_a_simulator_service_on_the_port_its_url_names() -> None:
    assert simulator_problems(_compose(), _settings()) == []


def test_the_bus_services_run_valid_roles_and_cover_every_destination_once() -> None:
    compose = _compose()
    assert len(_bus_services(compose)) >= 2
    assert bus_service_problems(compose, _settings()) == []


def test_every_broker_url_names_a_rabbitmq_service() -> None:
    assert broker_problems(_compose(), _settings()) == []


def test_the_three_nodes_share_one_cookie_and_the_plugin() -> None:
    assert cluster_problems(_compose()) == []


def test_no_secret_is_written_in_the_compose_file() -> None:
    assert secret_problems(_compose()) == []


def test_the_router_publishes_the_intake_port_of_the_config() -> None:
    compose = _compose()
    settings = _settings()
    routers = [s for s in _bus_services(compose).values() if "router" in _command(s)]
    ports = [str(p) for s in routers for p in s.get("ports", [])]
    assert any(p.endswith(f":{settings.intake.http_port}") for p in ports), ports


def test_the_dockerfile_builds_the_cli_as_a_non_root_user() -> None:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["renkei"\]', text, re.MULTILINE)
    assert 'renkei = "bus.cli:main"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for source in re.findall(r"^COPY\s+(.+)\s+\S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY {path}: not in the repository"
    assert "COPY schemas" in text and "COPY routes" in text  # the wheel built in the image ships both
    for service in _compose()["services"].values():
        if "build" in service:
            assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}


# -- the checks can fail ---------------------------------------------------------------------


def _broken(change: str) -> dict[str, Any]:
    compose = copy.deepcopy(_compose())
    services = compose["services"]
    if change == "simulator port":
        services["sim-kaigo"]["command"] = [*_command(services["sim-kaigo"])[:-4], "--port", "9999",
                                            "--store", "/tmp/x"]
    elif change == "role":
        services["deliver-tax"]["command"] = [*_command(services["deliver-tax"])[:4], "deliverer"]
    elif change == "unshared state":
        del services["deliver-tax"]["environment"]["RENKEI_STATE_STORE"]
    elif change == "no shard group":
        router = services["router"]
        router["command"] = [w for w in _command(router) if w not in ("--shard-group", "auto/3")]
    elif change == "one host port":
        services["router"]["ports"] = ["127.0.0.1:8080:8080"]
    elif change == "container name":
        services["deliver-national"]["container_name"] = "deliver-national"
    elif change == "destination twice":
        services["deliver-welfare"]["command"] = [*_command(services["deliver-welfare"]), "--destination", "zei"]
    elif change == "broker host":
        services["router"]["environment"]["RENKEI_BROKER_URL"] = "amqp://renkei:${P}@rabbitmq:5672/%2F"
    elif change == "cookie":
        services["rabbit3"]["environment"] = {**services["rabbit3"]["environment"], "RABBITMQ_ERLANG_COOKIE": "x"}
    elif change == "secret":
        services["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    return compose


@pytest.mark.parametrize(("change", "check"), [
    ("simulator port", simulator_problems),
    ("role", bus_service_problems),
    ("destination twice", bus_service_problems),
    ("unshared state", bus_service_problems),
    ("no shard group", bus_service_problems),
    ("one host port", bus_service_problems),
    ("container name", bus_service_problems),
    ("broker host", broker_problems),
    ("cookie", lambda compose, _: cluster_problems(compose)),
    ("secret", lambda compose, _: secret_problems(compose)),
])
def test_a_broken_compose_file_is_caught(change: str, check: Any) -> None:
    assert check(_compose(), _settings()) == []
    assert check(_broken(change), _settings()) != []


def test_the_documented_status_command_reads_the_whole_bus_from_the_shared_store() -> None:
    """Dead letters, parked and held changes live in the shared [state] store, not in a
    worker's volume: the README's `renkei status` needs no --state-dir of the others, and no
    bus service keeps a state volume that would matter (issue 15)."""
    compose = _compose()
    for name, service in _bus_services(compose).items():
        for volume in service.get("volumes", []):
            assert str(volume).partition(":")[2].split(":")[0] != "/var/lib/renkei", f"{name} keeps a state volume"
    readme = (DOCKER / "README.md").read_text(encoding="utf-8")
    command = re.search(r"docker compose exec router (renkei status(?:[^\n\\]|\\\n)*)", readme)
    assert command is not None
    args = shlex.split(command.group(1).replace("\\\n", " "))
    assert "--state-dir" not in args
    assert _parse(args[1:])[0] == "status"
