"""AWS IoT broker semantics with real paho clients, over TCP and over WebSocket."""

from __future__ import annotations

import asyncio
import logging

import paho.mqtt.client as mqtt
import pytest

from emulator.app import Emulator
from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle
from tests.integration.conftest import SETTINGS, ClientFactory

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def emulator_handle(iot_emulator_factory: EmulatorFactory) -> EmulatorHandle:
    """Not about the quotas (tests/integration/test_broker_quotas.py is): the take-over and
    persistent-session tests reconnect a client ID at once (AWS: 1 CONNECT/s)."""
    return await iot_emulator_factory(**SETTINGS, connect_rate=0)


async def test_qos0_and_qos1_round_trip(make_client: ClientFactory) -> None:
    sub = await make_client()
    assert await sub.subscribe("room/+", 1) == [1]
    pub = await make_client()
    await pub.publish("room/a", b"zero", qos=0)
    await pub.publish("room/b", b"one", qos=1)
    first, second = await sub.next_message(), await sub.next_message()
    assert (first.topic, first.payload, first.qos) == ("room/a", b"zero", 0)
    assert (second.topic, second.payload, second.qos) == ("room/b", b"one", 1)


async def test_qos2_is_not_supported_as_on_aws(make_client: ClientFactory) -> None:
    """AWS: with QoS 2 requested the broker sends no PUBACK/SUBACK; nothing is delivered."""
    sub = await make_client()
    pending = sub.subscribe_nowait("q2/topic", 2)
    assert await sub.subscribe("q2/marker", 0) == [0]  # a later SUBACK arrives, the QoS 2 one never
    assert not pending.done()
    await sub.subscribe("q2/#", 1)
    pub = await make_client()
    pub.publish_nowait("q2/dropped", b"qos2", qos=2)
    await pub.publish("q2/marker", b"after", qos=1)
    msg = await sub.next_message()
    assert (msg.topic, msg.payload) == ("q2/marker", b"after")


async def test_duplicate_client_id_takes_over(make_client: ClientFactory) -> None:
    watcher = await make_client()
    await watcher.subscribe("$aws/events/presence/disconnected/dup-id", 0)
    first = await make_client("dup-id")
    second = await make_client("dup-id")
    await first.wait_disconnected()
    event = (await watcher.message_on("$aws/events/presence/disconnected/dup-id")).json()
    assert event["disconnectReason"] == "DUPLICATE_CLIENTID"
    assert event["clientInitiatedDisconnect"] is False
    # The new connection works.
    await second.subscribe("still/here", 0)
    await second.publish("still/here", b"x")
    assert (await second.next_message()).payload == b"x"


async def test_hash_does_not_match_parent_and_dollar_topics_are_hidden(
    make_client: ClientFactory,
) -> None:
    sub = await make_client()
    await sub.subscribe("sensor/#", 0)
    await sub.subscribe("#", 0)
    pub = await make_client()
    await pub.publish("sensor", b"parent", qos=1)
    await pub.publish("sensor/", b"child", qos=1)
    # 'sensor' reaches only '#'; 'sensor/' matches both filters but is delivered once.
    got = [await sub.next_message(), await sub.next_message()]
    assert [m.topic for m in got] == ["sensor", "sensor/"]
    only_hash = await make_client()
    await only_hash.subscribe("sensor/#", 0)
    await pub.publish("sensor", b"parent again", qos=1)
    await pub.publish("sensor/x", b"child", qos=1)
    assert (await only_hash.next_message()).topic == "sensor/x"
    # '#' never matches '$aws/...': the lifecycle events of a new client are not seen.
    await make_client("hidden-events")
    await pub.publish("marker", b"m", qos=1)
    seen = [await sub.next_message() for _ in range(3)]
    assert [m.topic for m in seen] == ["sensor", "sensor/x", "marker"]


async def test_dollar_events_subscribe_ok_publish_refused(make_client: ClientFactory) -> None:
    sub = await make_client()
    assert await sub.subscribe("$aws/events/#", 0) == [0]
    c = await make_client("evt-client")
    msg = await sub.message_on("$aws/events/presence/connected/evt-client")
    assert msg.json()["eventType"] == "connected"
    await c.publish("$aws/events/presence/connected/fake", b"{}", qos=0)
    await c.wait_disconnected()


async def test_retained_messages(make_client: ClientFactory) -> None:
    pub = await make_client()
    await pub.publish("cfg/a", b"v1", qos=1, retain=True)
    await pub.publish("cfg/a", b"v2", qos=1, retain=True)  # replaces
    exact = await make_client()
    await exact.subscribe("cfg/a", 1)
    msg = await exact.next_message()
    assert (msg.payload, msg.retain) == (b"v2", True)
    # A wildcard subscription does not get the retained message on subscribe (AWS).
    wild = await make_client()
    await wild.subscribe("cfg/#", 1)
    await pub.publish("cfg/marker", b"m", qos=1)
    assert (await wild.next_message()).topic == "cfg/marker"
    # Live messages to existing subscribers carry no RETAIN flag.
    await pub.publish("cfg/a", b"v3", qos=1, retain=True)
    live = await exact.next_message()
    assert (live.payload, live.retain) == (b"v3", False)
    # An empty retained publish deletes it (and is delivered to subscribers).
    await pub.publish("cfg/a", b"", qos=1, retain=True)
    assert (await exact.next_message()).payload == b""
    late = await make_client()
    await late.subscribe("cfg/a", 1)
    await pub.publish("cfg/a", b"fresh", qos=1)
    assert (await late.next_message()).payload == b"fresh"


async def test_persistent_session_keeps_subscriptions_and_queues_qos1(
    make_client: ClientFactory,
) -> None:
    c = await make_client("persistent-1", clean_session=False)
    await c.subscribe("inbox/p1", 1)
    await c.disconnect()
    pub = await make_client()
    await pub.publish("inbox/p1", b"while away", qos=1)
    await pub.publish("inbox/p1", b"qos0 not kept", qos=0)
    again = await make_client("persistent-1", clean_session=False, connect=False)
    rc, session_present = await again.connect()
    assert session_present is True
    msg = await again.next_message()
    assert (msg.payload, msg.qos) == (b"while away", 1)
    await pub.publish("inbox/p1", b"live", qos=1)  # subscription survived without SUBSCRIBE
    assert (await again.next_message()).payload == b"live"


async def test_clean_session_discards_persistent_state(make_client: ClientFactory) -> None:
    c = await make_client("persistent-2", clean_session=False)
    await c.subscribe("inbox/p2", 1)
    await c.disconnect()
    clean = await make_client("persistent-2", clean_session=True, connect=False)
    rc, session_present = await clean.connect()
    assert session_present is False


async def test_last_will_on_abnormal_disconnect(make_client: ClientFactory) -> None:
    watcher = await make_client()
    await watcher.subscribe("wills/#", 1)
    await watcher.subscribe("$aws/events/presence/disconnected/+", 1)
    dying = await make_client("will-1", connect=False)
    dying.will_set("wills/will-1", b"gone", qos=1)
    await dying.connect()
    await dying.kill()
    will = await watcher.message_on("wills/will-1")
    assert will.payload == b"gone"
    event = (await watcher.message_on("$aws/events/presence/disconnected/will-1")).json()
    assert event["disconnectReason"] == "CONNECTION_LOST"
    assert event["clientInitiatedDisconnect"] is False


async def test_no_will_on_clean_disconnect(make_client: ClientFactory) -> None:
    watcher = await make_client()
    await watcher.subscribe("wills/#", 1)
    polite = await make_client("will-2", connect=False)
    polite.will_set("wills/will-2", b"should not appear", qos=1)
    await polite.connect()
    await polite.disconnect()
    pub = await make_client()
    await pub.publish("wills/marker", b"m", qos=1)
    assert (await watcher.next_message()).topic == "wills/marker"


@pytest.mark.parametrize(
    ("topic", "payload", "why"),
    [
        ("big/payload", b"x" * (128 * 1024 + 1), "over the limit of 131072"),
        ("t/" + "x" * 260, b"x", "over the limit of 256"),
        ("a/b/c/d/e/f/g/h/i", b"x", "8 slashes"),
    ],
)
async def test_limits_disconnect_with_a_reason(
    make_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    payload: bytes,
    why: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="emulator")
    c = await make_client("limits-client")
    c.publish_nowait(topic, payload, qos=0)
    await c.wait_disconnected()
    assert any(why in r.getMessage() and "limits-client" in r.getMessage() for r in caplog.records)


async def test_client_id_over_128_bytes_is_rejected(make_client: ClientFactory) -> None:
    c = await make_client("x" * 129, connect=False)
    rc, _ = await c.connect(expect_rc=None)
    assert rc != 0


async def test_lifecycle_events_have_every_documented_field(make_client: ClientFactory) -> None:
    watcher = await make_client()
    await watcher.subscribe("$aws/events/#", 1)
    c = await make_client("life-1")
    connected = (await watcher.message_on("$aws/events/presence/connected/life-1")).json()
    assert set(connected) == {
        "clientId",
        "timestamp",
        "eventType",
        "sessionIdentifier",
        "principalIdentifier",
        "ipAddress",
        "versionNumber",
    }
    assert connected["clientId"] == "life-1" and connected["ipAddress"] == "127.0.0.1"
    assert connected["timestamp"] > 1_600_000_000_000  # milliseconds
    await c.subscribe("x/y", 1)
    subscribed = (await watcher.message_on("$aws/events/subscriptions/subscribed/life-1")).json()
    assert subscribed["topics"] == ["x/y"] and subscribed["eventType"] == "subscribed"
    assert subscribed["sessionIdentifier"] == connected["sessionIdentifier"]
    await c.unsubscribe("x/y")
    unsub = (await watcher.message_on("$aws/events/subscriptions/unsubscribed/life-1")).json()
    assert unsub["topics"] == ["x/y"]
    await c.disconnect()
    gone = (await watcher.message_on("$aws/events/presence/disconnected/life-1")).json()
    assert gone["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    assert gone["clientInitiatedDisconnect"] is True
    assert gone["versionNumber"] == connected["versionNumber"]
    again = await make_client("life-1")
    reconnected = (await watcher.message_on("$aws/events/presence/connected/life-1")).json()
    assert reconnected["versionNumber"] > connected["versionNumber"]
    await again.disconnect()


async def test_health_reports_ports(emulator: Emulator) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{emulator.http_port}/health") as resp:
            body = await resp.json()
    assert body["status"] == "ok"
    assert body["mqtt"] == {
        "tcp": emulator.mqtt_port,
        "ws": "/mqtt",
        "connections": 0,
        "sessions": 0,
        "subscriptions": 0,
    }


async def test_device_sdk_metrics_in_the_username_are_not_the_principal(
    emulator: Emulator, make_client: ClientFactory
) -> None:
    """The AWS IoT Device SDKs send "<username>?SDK=...&Version=..." (or only the metrics);
    AWS does not take the metrics as identity."""
    watcher = await make_client()
    await watcher.subscribe("$aws/events/presence/connected/+", 1)
    assert emulator.mqtt_port is not None
    for client_id, username, principal in (
        ("sdk-1", "device-user?SDK=PythonV2&Version=1.21.0", "device-user"),
        ("sdk-2", "?SDK=PythonV2&Version=1.21.0&Platform=Linux", "anonymous"),
    ):
        device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        device.username_pw_set(username)
        await asyncio.to_thread(device.connect, "127.0.0.1", emulator.mqtt_port)
        device.loop_start()
        try:
            event = await watcher.message_on(f"$aws/events/presence/connected/{client_id}")
            assert event.json()["principalIdentifier"] == principal
        finally:
            device.disconnect()
            device.loop_stop()
