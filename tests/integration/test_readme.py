"""The README as a new user follows it: its shell session, environment variables, make
targets, modules and settings do what it says, against a real ``up`` process.

The "Debug rules" section's commands are run by test_readme_commands.py, the pytest plugin
section's ``pytest.ini`` and example by test_plugin_install.py (from a non-editable install)."""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO

import botocore.session
import paho.mqtt.client as mqtt
import pytest

from emulator.cli import build_parser
from emulator.config import REPO_ROOT, Config, load_config

README = (REPO_ROOT / "README.md").read_text()
VENV_BIN = Path(sys.executable).parent


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def shell_session() -> str:
    """The shell block of "Point your tests at it": exports, aws CLI lines, curl."""
    (block,) = re.findall(r"```sh\n(.*?)```", section("Point your tests at it"), re.S)
    return str(block)


def exported(block: str) -> dict[str, str]:
    """The variables the block's ``export`` lines set, as a shell would read them."""
    variables: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("export "):
            words = shlex.split(line, comments=True)[1:]
            variables.update(word.split("=", 1) for word in words)  # type: ignore[misc]
    return variables


def endpoint_variable(client: str) -> str:
    """The variable botocore reads for a client: ``AWS_ENDPOINT_URL_`` and the service id."""
    service_id = botocore.session.get_session().get_service_model(client).service_id
    return "AWS_ENDPOINT_URL_" + str(service_id).replace(" ", "_").upper()


def test_every_endpoint_variable_named_is_one_botocore_reads() -> None:
    """``AWS_ENDPOINT_URL_IOT_DATA`` (the client's name) is read by nothing: a user who set
    it published to the real AWS IoT."""
    expected = {c: endpoint_variable(c) for c in ("iot-data", "lambda", "dynamodb", "kinesis")}
    assert expected["iot-data"] == "AWS_ENDPOINT_URL_IOT_DATA_PLANE"
    for name in ("README.md", "docker-compose.yml"):
        text = (REPO_ROOT / name).read_text()
        # a warning may name a wrong one, as "`AWS_ENDPOINT_URL_X` is not read"
        named = set(re.findall(r"AWS_ENDPOINT_URL_[A-Z0-9_]+\b(?!` is not read)", text))
        assert named <= set(expected.values()), (name, named - set(expected.values()))
    row = re.search(r'^\| IoT data plane \(`boto3\.client\("iot-data"\)`.*$', README, re.M)
    assert row is not None and f"`{expected['iot-data']}=http://localhost:8080`" in row[0]
    assert exported(shell_session())[expected["iot-data"]] == "http://localhost:8080"


@dataclass
class Running:
    """An ``up`` process on free ports, its log drained by a thread (a full pipe would stop
    it)."""

    process: subprocess.Popen[str]
    mqtt_port: int
    http_port: int
    log: list[str] = field(default_factory=list)


def clean_environment(**extra: str) -> dict[str, str]:
    """PATH and a home without AWS files: only what the test sets reaches the clients."""
    return {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": str(REPO_ROOT / "tests"), **extra}


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EMULATOR_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "up", "--backend", "moto", "--in-memory"]
        + ["--no-auth", "--mqtt-port", "0", "--http-port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    log: list[str] = []
    ready: queue.Queue[re.Match[str] | None] = queue.Queue()

    def drain(stream: IO[str]) -> None:
        for line in stream:
            log.append(line)
            if match := re.search(r"ready in .*mqtt://[\d.]+:(\d+) ws://[\d.]+:(\d+)/mqtt", line):
                ready.put(match)
        ready.put(None)

    drainer = threading.Thread(target=drain, args=(process.stderr,), daemon=True)
    drainer.start()
    try:
        match = ready.get(timeout=60)
        assert match is not None, "".join(log)
        yield Running(process, int(match[1]), int(match[2]), log)
    finally:
        process.terminate()
        process.wait(timeout=30)
        drainer.join(timeout=10)
        process.stderr.close()


class Subscriber:
    """A paho client subscribed to one topic; ``received`` waits for a message on it."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: queue.Queue[bytes] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"readme-{topic}")
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg.payload)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK"

    def received(self) -> bytes:
        return self.messages.get(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_readme_shell_session_reaches_the_emulator(running: Running) -> None:
    """The block runs as written (the port aside): the CLI's publish arrives on the broker,
    the Invoke API answers, curl prints /health."""
    block = shell_session().replace("localhost:8080", f"localhost:{running.http_port}")
    published = re.search(r"aws iot-data publish --topic (\S+) --payload '([^']*)'", block)
    assert published is not None
    subscriber = Subscriber(running.mqtt_port, published[1])
    try:
        result = subprocess.run(
            ["bash", "-e", "-c", block],
            cwd=REPO_ROOT,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(subscriber.received()) == json.loads(published[2])
    finally:
        subscriber.close()
    assert re.search(r'"StatusCode": 200', result.stdout), result.stdout
    health = json.loads(result.stdout[result.stdout.index('{"status"') :])
    assert health["http"] == running.http_port and health["backends"]["kind"] == "moto"


def test_boto3_in_the_readme_environment_reaches_the_emulator(running: Running) -> None:
    """A boto3 client built from exactly the README's variables (no endpoint_url in code)
    publishes to the emulator, and the Lambda client invokes its function."""
    variables = {
        name: value.replace("localhost:8080", f"localhost:{running.http_port}")
        for name, value in exported(shell_session()).items()
    }
    script = (
        "import boto3, json\n"
        "boto3.client('iot-data').publish(topic='readme/boto3', qos=1, payload=b'from boto3')\n"
        "answer = boto3.client('lambda').invoke(FunctionName='chat', Payload=b'{}')\n"
        "print(json.dumps({'status': answer['StatusCode'], 'error': answer.get('FunctionError')}))\n"
    )
    subscriber = Subscriber(running.mqtt_port, "readme/boto3")
    try:
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=clean_environment(**variables),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert subscriber.received() == b"from boto3"
    finally:
        subscriber.close()
    assert json.loads(result.stdout) == {"status": 200, "error": None}


def make_dry_run(*args: str) -> list[str]:
    """The recipe ``make -n`` prints, as a user's top-level make would: under CI the suite
    itself runs inside ``make test``, whose MAKELEVEL/MAKEFLAGS would make this nested
    make print "Entering/Leaving directory" lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_every_make_target_named_exists() -> None:
    targets = set(re.findall(r"\bmake (\w+)", README))
    assert {"run", "test", "lock", "bench"} <= targets
    for target in targets:
        assert make_dry_run(target), target


def test_make_run_runs_up_with_the_readme_args() -> None:
    (args,) = re.findall(r'`make run ARGS="([^"]*)"`', README)
    command = make_dry_run("run", f"ARGS={args}")[-1]
    assert command == f".venv/bin/python -m emulator up {args}"
    build_parser().parse_args(shlex.split(command)[3:])


def test_make_test_runs_lint_types_and_the_suite_as_ci_does() -> None:
    recipe = "\n".join(make_dry_run("test"))
    for command in ("-m ruff check", "-m mypy", "-m pytest"):
        assert command in recipe, command
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_up_help_names_every_flag_of_the_configuration_table() -> None:
    """``.venv/bin/chat-emulator up --help`` and ``python -m emulator up --help`` alike."""
    outputs = [
        subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        for command in (
            [str(VENV_BIN / "chat-emulator"), "up", "--help"],
            [sys.executable, "-m", "emulator", "up", "--help"],
        )
    ]
    assert outputs[0] == outputs[1]
    flags = re.findall(r"^\| `(--[a-z-]+)`", section("Configuration"), re.M)
    assert "--mqtt-port" in flags
    for flag in flags:
        assert re.search(rf"\s{flag}\b", outputs[0]), flag


def sample(name: str, tmp_path: Path) -> str:
    """A value of setting ``name`` other than its default, as text (an environment value)."""
    default = getattr(load_config({}, environ={}), name)
    choices = {"host": "0.0.0.0", "backend": "moto", "log_level": "DEBUG"}
    if name in choices:
        return choices[name]
    if isinstance(default, bool):
        return "false" if default else "true"
    if isinstance(default, int | float):
        return str(default + 7)
    if isinstance(default, Path):
        return str(tmp_path / name)
    if isinstance(default, tuple):
        return f"{tmp_path / 'a'}:{tmp_path / 'b'}"
    raise AssertionError(f"no sample value for {name}")


def flag_setting(flag: str) -> tuple[str, bool]:
    """The setting a flag of ``up`` sets, and whether the flag takes a value."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    (action,) = [a for a in sub.choices["up"]._actions if flag in a.option_strings]
    return action.dest, action.nargs != 0


def test_every_configuration_variable_sets_its_flags_setting(tmp_path: Path) -> None:
    """Each row's variable gives the setting the row's flag gives; the ``external``
    endpoints and ``EMULATOR_CONFIG`` (a YAML file of flag names) too."""
    rows = re.findall(
        r"^\| (?:`(--[a-z-]+)`)? *\| ((?:`[A-Z_]+`(?:, )?)+) \|", section("Configuration"), re.M
    )
    assert len(rows) >= 10
    default = load_config({}, environ={})
    for flag, variables in rows:
        names = re.findall(r"`([A-Z_]+)`", variables)
        if not flag:  # the external backend's endpoints
            for variable in names:
                setting = variable.removeprefix("AWS_ENDPOINT_URL_").lower() + "_endpoint"
                config = load_config({}, environ={variable: "http://backend:1"})
                assert getattr(config, setting) == "http://backend:1", variable
            continue
        (variable,) = names
        if flag == "--config":
            settings = tmp_path / "settings.yaml"
            settings.write_text("mqtt-port: 1999\n")
            assert load_config({}, environ={variable: str(settings)}).mqtt_port == 1999
            continue
        setting, takes_value = flag_setting(flag)
        value = sample(setting, tmp_path)
        from_env = getattr(load_config({}, environ={variable: value}, cwd=tmp_path), setting)
        assert from_env != getattr(default, setting), variable
        if not takes_value:
            assert from_env is True  # the flag switches on what the variable does
            continue
        value = value.split(":")[0] if isinstance(from_env, tuple) else value
        flags = vars(build_parser().parse_args(["up", flag, value]))
        flags = {k: v for k, v in flags.items() if k not in {"handler", "command"}}
        from_flag = getattr(load_config(flags, environ={}, cwd=tmp_path), setting)
        assert (from_env[:1] if isinstance(from_env, tuple) else from_env) == from_flag, flag


def test_every_limit_is_a_config_key_and_a_variable(tmp_path: Path) -> None:
    keys = re.findall(
        r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", README.split("### Limits", 1)[1], re.M
    )
    names = [name for pair in keys for name in pair if name]
    assert "publish_rate" in names and len(names) >= 15
    default = load_config({}, environ={})
    for name in names:
        value = (
            sample(name, tmp_path) if not isinstance(getattr(default, name), tuple) else "x.example"
        )
        config = load_config({}, environ={f"EMULATOR_{name.upper()}": value})
        assert getattr(config, name) != getattr(default, name), name
    assert "EMULATOR_PUBLISH_RATE=1000" in README
    assert load_config({}, environ={"EMULATOR_PUBLISH_RATE": "1000"}).publish_rate == 1000


def test_the_config_file_only_keys_are_settings() -> None:
    paragraph = section("Configuration").split("Config-file-only keys:", 1)[1].split("\n\n")[0]
    keys = set(re.findall(r"`([a-z_]+)`", paragraph))
    assert {"region", "credentials", "advertised_endpoints"} <= keys
    settings = {f.name for f in fields(Config)}
    assert keys <= settings, keys - settings


def test_every_python_module_named_runs_and_takes_the_flags_named() -> None:
    """The tour's ``python -m benchmarks...`` commands exist and accept the flags it names
    (``--help`` only: the benchmarks themselves run in ``make bench`` and benchmarks/)."""
    modules = re.findall(r"`python -m\s+([a-z_.]+)", README)
    assert {"emulator", "benchmarks.churn", "benchmarks.instructions"} <= set(modules)
    helps = {
        module: subprocess.run(
            [sys.executable, "-m", module, *(["up"] if module == "emulator" else []), "--help"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for module in modules
    }
    bullet = README[README.index("- `benchmarks/`") :].split("\n- ", 1)[0].split("\n\n")[0]
    flags = re.findall(r"`(--[a-z-]+)", bullet)
    assert {"--profile", "--repo"} <= set(flags), bullet
    for flag in flags:
        assert any(re.search(rf"\s{flag}\b", text) for text in helps.values()), flag


def test_the_http_routes_the_readme_names_answer(running: Running) -> None:
    """``GET /health`` (its sections as the Configuration section lists them) and
    ``GET /debug/memory``."""
    base = f"http://127.0.0.1:{running.http_port}"
    assert "`GET /health`" in README and "`GET /debug/memory`" in README
    with urllib.request.urlopen(f"{base}/health", timeout=10) as answer:
        health = json.load(answer)
    for key in ("mqtt", "auth", "sigv4", "http_connections", "backends", "rules", "functions"):
        assert key in health, key
    assert {"dynamodb", "kinesis"} <= set(health["backends"])
    with urllib.request.urlopen(f"{base}/debug/memory", timeout=10) as answer:
        memory = json.load(answer)
    assert memory["objects"] > 0 and memory["rss_kib"] > 0
