"""The project's pytest plugin (emulator/pytest_plugin.py): the one way every test here, and
every user's, starts an emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emulator.pytest_plugin import EmulatorFactory, running_emulator

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
