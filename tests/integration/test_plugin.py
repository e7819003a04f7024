"""The project's pytest plugin (emulator/pytest_plugin.py): the one way every test here, and
every user's, starts an emulator."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from emulator.app import StartupError
from emulator.config import REPO_ROOT, ConfigError
from emulator.pytest_plugin import (
    EmulatorFactory,
    EmulatorHandle,
    ThreadedEmulatorFactory,
    emulator_config,
    kill_groups,
    live_groups,
    running_emulator,
)

RELAY = """
rules:
  - ruleName: Relay
    sql: "SELECT * FROM 'in/x'"
    actions:
      - republish: {topic: "out/x"}
"""


async def test_running_emulator_listens_on_a_free_port_and_stops_on_exit() -> None:
    async with running_emulator(rules=[], backend="auto") as iot:
        port = iot.mqtt_port
        assert port != 1883
        client = await iot.mqtt_client()
        assert client.client.is_connected()
    assert not client.client.is_connected()  # the handle closed its clients
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()


async def test_the_factory_starts_emulators_with_settings_made_in_the_test(
    iot_emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    (tmp_path / "relay.yaml").write_text(RELAY)
    relay = await iot_emulator_factory(rules=[str(tmp_path)], backend="auto")
    plain = await iot_emulator_factory(rules=[], backend="auto")
    assert relay.mqtt_port != plain.mqtt_port
    watcher = await relay.mqtt_client()
    await watcher.subscribe("out/x", 1)
    await watcher.publish("in/x", b"{}", qos=1)
    assert (await watcher.message_on("out/x")).payload == b"{}"
    other = await plain.mqtt_client()
    await other.subscribe("#", 1)
    await other.publish("in/x", b"{}", qos=1)
    await other.publish("done", b"", qos=1)
    # no rules here: only the two messages themselves, in order
    assert [(await other.next_message()).topic for _ in range(2)] == ["in/x", "done"]


@pytest.mark.iot_emulator(rules=[], backend="auto")
async def test_a_synchronous_boto3_call_in_an_async_test_gets_its_answer(
    iot_emulator: EmulatorHandle,
) -> None:
    client = await iot_emulator.mqtt_client()
    await client.subscribe("sync/x", 1)
    # Blocks this loop: an emulator on it would never answer (the plugin runs it on its own).
    iot_emulator.boto3_client("iot-data").publish(topic="sync/x", qos=1, payload=b"ok")
    assert (await client.message_on("sync/x")).payload == b"ok"
    # the emulator's own coroutines run on its loop, from this one
    assert iot_emulator.run(iot_emulator.emulator.rules.wait_idle()) is None


def test_a_sync_test_drives_paho_and_boto3(iot_emulators: ThreadedEmulatorFactory) -> None:
    iot = iot_emulators(rules=[], backend="auto")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sync-test")
    client.connect("127.0.0.1", iot.mqtt_port)
    client.loop_start()
    try:
        assert client.subscribe("sync/#", 1)[0] == mqtt.MQTT_ERR_SUCCESS
        retained = json.dumps({"n": 1}).encode()
        iot.boto3_client("iot-data").publish(topic="sync/kept", retain=True, payload=retained)
        got = iot.boto3_client("iot-data").get_retained_message(topic="sync/kept")
        assert got["payload"] == retained
    finally:
        client.disconnect()
        client.loop_stop()
    # a second emulator's failed start stops it; the first stops at teardown
    with pytest.raises(StartupError, match=f"MQTT port {iot.mqtt_port}: "):
        iot_emulators(rules=[], backend="auto", mqtt_port=iot.mqtt_port)


def test_relative_paths_start_at_the_root_and_missing_ones_fail_naming_the_path(
    tmp_path: Path,
) -> None:
    config = emulator_config({"rules": ["rules/"]}, root=REPO_ROOT)
    assert config.rules == (REPO_ROOT / "rules",)
    with pytest.raises(ConfigError) as info:
        emulator_config({"rules": ["rules/"], "policies": ["p.json"]}, root=tmp_path)
    assert str(info.value) == (
        f"iot_emulator: rules path {tmp_path / 'rules'} does not exist "
        f"(relative paths start at pytest's rootdir, {tmp_path})"
    )


def test_a_process_group_left_behind_is_killed() -> None:
    child = subprocess.Popen(
        ["sh", "-c", "sleep 60 & wait"], start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        assert live_groups({child.pid}) == {child.pid}
        kill_groups({child.pid})
        assert child.wait(timeout=10) == -9
        assert live_groups({child.pid}) == set()  # the grandchild (sleep) too
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# Starts a threaded emulator with moto and a Lambda worker, prints their process groups, and
# leaves without stopping it, as a run that skips its teardown does.
ABANDONED = """
import json, sys
from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorHandle, EmulatorThread, emulator_config, process_groups

rules = REPO_ROOT / "tests" / "fixtures" / "functions" / "functions.yaml"
runner = EmulatorThread(emulator_config({"rules": [rules], "backend": "moto"}))
iot = EmulatorHandle(runner.start(), runner=runner)
iot.boto3_client("lambda").invoke(FunctionName="echo", Payload=b"{}")
print(json.dumps(sorted(process_groups(iot.emulator))), flush=True)
"""


def test_an_emulator_never_stopped_leaves_no_process_after_exit() -> None:
    run = subprocess.run(
        [sys.executable, "-c", ABANDONED], capture_output=True, text=True, timeout=90
    )
    assert run.returncode == 0, run.stderr
    groups = set(json.loads(run.stdout.splitlines()[-1]))
    assert len(groups) == 2  # moto and the worker
    assert live_groups(groups) == set()
