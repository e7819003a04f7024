"""Basic Ingest (iot-basic-ingest.md) and ``sourceip()`` through a running emulator: paho
clients over TCP and WebSocket, and boto3's ``iot-data`` Publish over HTTP.

A message on ``$aws/rules/<rule>/<topic>`` runs that rule (its republish is what we see),
reaches no subscriber (a ``$aws/#`` subscriber, which would match it in the broker, gets
the next lifecycle event instead), and a missing rule still gets its PUBACK and a log line.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle
from emulator.testing import TestClient
from tests.integration.conftest import SETTINGS, ClientFactory

RULES = """
rules:
  - ruleName: BuildingManager
    sql: >-
      SELECT topic() AS t, topic(3) AS floor, sourceip() AS ip, clientid() AS client, *
      FROM 'Buildings/#'
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "ingested/${topic(1)}"}
  - ruleName: NoFrom
    sql: SELECT topic() AS t
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "nofrom/out"}
  - ruleName: Ip
    sql: SELECT sourceip() AS ip FROM 'x'
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "ip/out"}
"""

TOPIC = "$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights"


@pytest.fixture
async def emulator_handle(iot_emulator_factory: EmulatorFactory, tmp_path: Path) -> EmulatorHandle:
    (tmp_path / "rules.yaml").write_text(RULES)
    return await iot_emulator_factory(**{**SETTINGS, "rules": [tmp_path]})


async def watchers(handle: EmulatorHandle) -> tuple[TestClient, TestClient]:
    """A ``#`` subscriber (sees the rule's republish) and a ``$aws/#`` one (would match a
    Basic Ingest topic, were the message delivered)."""
    everything = await handle.mqtt_client("watch-all")
    assert await everything.subscribe("#", 0) == [0]
    reserved = await handle.mqtt_client("watch-aws")
    assert await reserved.subscribe("$aws/#", 0) == [0]
    return everything, reserved


async def assert_not_delivered(handle: EmulatorHandle, reserved: TestClient, marker: str) -> None:
    """Of what the ``$aws/#`` subscriber got until the connected event of a client that
    connects after the Basic Ingest publish (lifecycle events), nothing is on ``$aws/rules/``."""
    await handle.mqtt_client(marker)
    seen: list[str] = []
    while not seen or seen[-1] != f"$aws/events/presence/connected/{marker}":
        seen.append((await reserved.next_message()).topic)
    assert [topic for topic in seen if topic.startswith("$aws/rules/")] == []
    assert all(topic.startswith("$aws/events/") for topic in seen)


async def test_a_basic_ingest_publish_runs_its_rule_and_reaches_no_subscriber(
    emulator_handle: EmulatorHandle, make_client: ClientFactory
) -> None:
    everything, reserved = await watchers(emulator_handle)
    device = await make_client("device-1")
    # AWS: devices can't subscribe to Basic Ingest topics
    assert await device.subscribe(TOPIC, 1) == [0x80]
    await device.publish(TOPIC, b'{"lights": "on"}', qos=1)  # returns on the PUBACK
    got = await everything.next_message()
    assert got.topic == "ingested/Buildings"
    assert got.json() == {
        "t": "Buildings/Building5/Floor2/Room201/Lights",
        "floor": "Floor2",
        "ip": "127.0.0.1",
        "client": "device-1",
        "lights": "on",
    }
    # FROM is optional for a rule used only through Basic Ingest
    await device.publish("$aws/rules/NoFrom/any/where", b"{}", qos=1)
    got = await everything.next_message()
    assert (got.topic, got.json()) == ("nofrom/out", {"t": "any/where"})
    await assert_not_delivered(emulator_handle, reserved, "marker-1")
    await device.publish("after", b"still connected", qos=1)
    assert (await everything.next_message()).topic == "after"


async def test_a_basic_ingest_publish_to_a_missing_rule_is_acknowledged_and_logged(
    emulator_handle: EmulatorHandle,
    make_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    everything, reserved = await watchers(emulator_handle)
    device = await make_client("device-2")
    with caplog.at_level(logging.WARNING, "emulator.rules.engine"):
        await device.publish("$aws/rules/NoSuchRule/a/b", b"{}", qos=1)
    assert [r.getMessage() for r in caplog.records if "RuleNotFound" in r.getMessage()] == [
        "RuleNotFound: Basic Ingest message on '$aws/rules/NoSuchRule/a/b' from client "
        "'device-2' dropped: rule 'NoSuchRule' does not exist"
    ]
    assert emulator_handle.emulator.rules.rule_not_found == 1
    await device.publish("after", b"still connected", qos=1)
    assert (await everything.next_message()).topic == "after"
    await assert_not_delivered(emulator_handle, reserved, "marker-2")


async def test_sourceip_is_the_publishing_clients_address(make_client: ClientFactory) -> None:
    watcher = await make_client("watch-ip")
    await watcher.subscribe("ip/out", 0)
    publisher = await make_client("from-localhost")
    await publisher.publish("x", b"{}", qos=1)
    assert (await watcher.next_message()).json() == {"ip": "127.0.0.1"}


async def test_a_data_plane_publish_to_basic_ingest_runs_its_rule(
    emulator_handle: EmulatorHandle,
) -> None:
    everything, reserved = await watchers(emulator_handle)
    client = emulator_handle.boto3_client("iot-data")
    await asyncio.to_thread(
        client.publish, topic="$aws/rules/BuildingManager/Buildings/B7/F3", qos=1, payload=b"{}"
    )
    got = await everything.next_message()
    assert got.topic == "ingested/Buildings"
    body = got.json()
    body.pop("client", None)  # clientid() of a message from no MQTT client: another matter
    assert body == {"t": "Buildings/B7/F3", "floor": "F3", "ip": "127.0.0.1"}  # the HTTP caller
    await asyncio.to_thread(client.publish, topic="$aws/rules/Missing/x", qos=1, payload=b"{}")
    assert emulator_handle.emulator.rules.rule_not_found == 1
    await assert_not_delivered(emulator_handle, reserved, "marker-3")
