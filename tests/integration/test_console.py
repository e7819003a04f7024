"""The console's stream and forms over real sockets (aiohttp's client, paho): nothing is
tapped while no console is open; what one viewer gets; a viewer that reads nothing loses
only its own events; the local-only checks; publishing as a client under the policy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from emulator.app import Emulator
from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle

RULES = str(REPO_ROOT / "tests" / "integration" / "console_rules")
TIMEOUT = 10
EVIL = "http://evil.example"


@pytest.fixture
async def handle(iot_emulator_factory: EmulatorFactory) -> EmulatorHandle:
    return await iot_emulator_factory(rules=[RULES], backend="auto")


class Stream:
    """One console viewer over HTTP: the server-sent events of ``/console/events``."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.events: list[dict[str, Any]] = []  # every hub event read so far
        self._unread: list[dict[str, Any]] = []  # of which not yet looked at by ``until``

    async def next(self, name: str | None = None) -> Any:
        """The next SSE message (``name``: of that event type; None: a batch of events)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                kind, data = None, ""
                while True:
                    line = (await self.response.content.readline()).decode().rstrip("\n")
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line == "" and data:
                        break
                if kind == name:
                    return json.loads(data)

    async def until(self, predicate: Any) -> dict[str, Any]:
        """The first hub event (of any batch from now) for which ``predicate`` holds."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                while self._unread:
                    event = self._unread.pop(0)
                    if predicate(event):
                        return event
                batch = await self.next()
                self.events += batch
                self._unread += batch


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client; the streams it opened are closed with it."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def opened() -> AsyncIterator[list[aiohttp.ClientResponse]]:
    """The streams a test opened, closed at its end."""
    responses: list[aiohttp.ClientResponse] = []
    yield responses
    for response in responses:
        response.close()


async def open_stream(
    http: aiohttp.ClientSession, em: Emulator, opened: list[aiohttp.ClientResponse]
) -> Stream:
    response = await http.get(f"http://127.0.0.1:{em.http_port}/console/events")
    opened.append(response)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    stream = Stream(response)
    state = await stream.next("state")  # sent once the viewer is attached
    assert [r["name"] for r in state["rules"]["rules"]] == ["Echo"]
    return stream


async def test_nothing_is_tapped_until_a_console_opens_and_after_it_closes(
    handle: EmulatorHandle,
    http: aiohttp.ClientSession,
    opened: list[aiohttp.ClientResponse],
) -> None:
    em = handle.emulator
    assert em.broker.on_message == em.rules.handle
    assert em.rules.observer is None and not em.console.hub.active
    stream = await open_stream(http, em, opened)
    assert em.broker.on_message == em.console.taps.message
    assert em.rules.observer is em.console.hub

    client = await handle.mqtt_client("sensor-1")
    await client.publish("dev/sensor-1/temp", b'{"temp": 21}', qos=1)
    message = await stream.until(
        lambda e: e["kind"] == "message" and e["topic"] == "dev/sensor-1/temp"
    )
    assert message["client_id"] == "sensor-1"
    assert message["transport"] == "mqtt"
    assert (message["payload"], message["size"]) == ('{"temp": 21}', 12)
    rule = await stream.until(lambda e: e["kind"] == "rule")
    assert rule == {
        "kind": "rule",
        "seq": message["seq"],
        "rule": "Echo",
        "matched": True,
        "output": {"double": 42},
        "error": None,
        "external": False,
    }
    action = await stream.until(lambda e: e["kind"] == "action")
    assert action["status"] == "published" and action["request"]["topic"] == "echo/sensor-1"
    echoed = await stream.until(lambda e: e["kind"] == "message" and e["topic"] == "echo/sensor-1")
    assert echoed["parent"] == message["seq"] and echoed["transport"] == "republish"

    # WHERE false is shown too.
    await client.publish("dev/sensor-1/temp", b'{"temp": -3}', qos=1)
    rule = await stream.until(lambda e: e["kind"] == "rule")
    assert (rule["matched"], rule["output"]) == (False, None)

    closed = asyncio.Event()  # the hub says when its last viewer is gone
    em.console.hub.on_activity.append(lambda active: None if active else closed.set())
    stream.response.close()  # the server sees the closed stream on its next write
    async with asyncio.timeout(TIMEOUT):
        await closed.wait()
    assert em.broker.on_message == em.rules.handle
    assert em.rules.observer is None


async def test_a_viewer_that_reads_nothing_loses_only_its_own_events(
    handle: EmulatorHandle,
    http: aiohttp.ClientSession,
    opened: list[aiohttp.ClientResponse],
) -> None:
    em = handle.emulator
    stream = await open_stream(http, em, opened)
    stuck = em.console.hub.attach(lambda: None, limit=5)  # never taken from
    client = await handle.mqtt_client("sensor-2")
    for i in range(1, 31):
        await client.publish("dev/sensor-2/temp", json.dumps({"temp": i}).encode(), qos=1)
    seen: set[int] = set()
    while len(seen) < 30:
        event = await stream.until(
            lambda e: e["kind"] == "message" and e["client_id"] == "sensor-2"
        )
        seen.add(json.loads(event["payload"])["temp"])
    assert len(stuck.events) == 5
    assert stuck.dropped > 0
    em.console.hub.detach(stuck)


async def test_the_console_is_local_only(
    handle: EmulatorHandle,
    http: aiohttp.ClientSession,
    opened: list[aiohttp.ClientResponse],
) -> None:
    base = f"http://127.0.0.1:{handle.emulator.http_port}"
    async with http.get(f"{base}/console/events", headers={"Origin": EVIL}) as response:
        assert response.status == 403
    async with http.get(f"{base}/console", headers={"Host": "evil.example"}) as response:
        assert response.status == 403  # DNS rebinding: the HTTP guard's Host check
    body = {"client_id": "x", "topic": "dev/x/temp", "payload": "{}"}
    async with http.post(f"{base}/console/publish", json=body, headers={"Origin": EVIL}) as r:
        assert r.status == 403
    assert not handle.emulator.console.hub.active
    async with http.get(f"{base}/console") as response:
        assert response.status == 200
        assert "IoT emulator" in await response.text()


async def test_publish_as_a_client_is_subject_to_the_policy(
    handle: EmulatorHandle,
    http: aiohttp.ClientSession,
    opened: list[aiohttp.ClientResponse],
) -> None:
    em = handle.emulator
    base = f"http://127.0.0.1:{em.http_port}"
    stream = await open_stream(http, em, opened)
    body = {"client_id": "tool", "topic": "other/topic", "payload": "{}"}
    async with http.post(f"{base}/console/publish", json=body) as response:
        assert response.status == 403
        assert "no statement allows iot:Publish" in (await response.json())["error"]
    denial = await stream.until(lambda e: e["kind"] == "denial")
    assert (denial["client_id"], denial["action"], denial["statement"]) == (
        "tool",
        "iot:Publish",
        None,  # an implicit deny: no statement decided
    )
    body = {"client_id": "tool", "topic": "dev/tool/temp", "payload": '{"temp": 5}'}
    async with http.post(f"{base}/console/publish", json=body) as response:
        assert response.status == 200
    rule = await stream.until(lambda e: e["kind"] == "rule")
    assert rule["output"] == {"double": 10}
    message = next(e for e in stream.events if e["kind"] == "message")
    assert (message["client_id"], message["transport"]) == ("tool", "console")


async def test_try_it_is_the_dry_run_of_rules_test(
    handle: EmulatorHandle,
    http: aiohttp.ClientSession,
    opened: list[aiohttp.ClientResponse],
) -> None:
    base = f"http://127.0.0.1:{handle.emulator.http_port}"
    message = {"topic": "dev/a/temp", "payload": '{"temp": 4}', "client_id": "c"}
    async with http.post(f"{base}/console/try", json={"mode": "loaded", **message}) as r:
        answer = await r.json()
    assert answer["results"] == [
        {
            "rule": "Echo",
            "output": {"double": 8},
            "actions": [{"type": "republish", "topic": "echo/a", "qos": 0, "retain": False}],
        }
    ]
    sql = {"mode": "sql", "sql": "SELECT clientid() AS who FROM 'dev/#'", **message}
    async with http.post(f"{base}/console/try", json=sql) as r:
        assert (await r.json())["results"][0]["output"] == {"who": "c"}
    bad = {"mode": "sql", "sql": "SELECT nosuch(1) FROM 'dev/#'", **message}
    async with http.post(f"{base}/console/try", json=bad) as r:
        assert any("nosuch" in d for d in (await r.json())["diagnostics"])
    assert not handle.emulator.console.hub.active  # a dry run opens no console


async def test_an_mqtt5_messages_properties_are_shown(
    handle: EmulatorHandle,
    http: aiohttp.ClientSession,
    opened: list[aiohttp.ClientResponse],
) -> None:
    em = handle.emulator
    stream = await open_stream(http, em, opened)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="v5-sensor", protocol=mqtt.MQTTv5
    )
    await asyncio.to_thread(client.connect, "127.0.0.1", handle.mqtt_port)
    client.loop_start()
    try:
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = "application/json"
        properties.UserProperty = [("unit", "celsius")]
        client.publish("dev/v5-sensor/temp", b'{"temp": 3}', 1, properties=properties)
        message = await stream.until(
            lambda e: e["kind"] == "message" and e["topic"] == "dev/v5-sensor/temp"
        )
    finally:
        client.loop_stop()
        client.disconnect()
    assert message["properties"]["content_type"] == "application/json"
    assert message["properties"]["user_properties"] == [["unit", "celsius"]]
