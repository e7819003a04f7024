"""Broker behaviour that needs a misbehaving client: raw MQTT bytes over TCP and WebSocket."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import pytest

from emulator.app import Emulator
from emulator.broker import codec
from emulator.broker.codec import encode_length
from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle
from emulator.testing import connect_packet, mqtt_string, publish_packet
from tests.integration.conftest import SETTINGS, ClientFactory, EmulatorStarter
from tests.integration.raw import RawConnection


@pytest.fixture
async def emulator_handle(iot_emulator_factory: EmulatorFactory) -> EmulatorHandle:
    """Not about the quotas (tests/integration/test_broker_quotas.py is): clients reconnect
    a client ID at once (AWS: 1 CONNECT/s) and the keep-alive test uses 1 s (AWS: 30 s
    at least)."""
    return await iot_emulator_factory(**SETTINGS, connect_rate=0, keepalive_min=1)


def subscribe_packet(topic: str, qos: int, packet_id: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + mqtt_string(topic) + bytes((qos,))
    return b"\x82" + encode_length(len(body)) + body


async def raw_connect(conn: RawConnection, client_id: str, **kwargs: Any) -> codec.Frame:
    await conn.send(connect_packet(client_id, **kwargs))
    connack = await conn.next_frame()
    assert connack.type == codec.CONNACK and connack.body[1] == 0
    return connack


async def test_unacknowledged_qos1_is_redelivered_with_dup(
    emulator: Emulator, transport: str, make_client: ClientFactory
) -> None:
    raw = await RawConnection.open(emulator, transport)
    await raw_connect(raw, "no-ack", clean=False)
    await raw.send(subscribe_packet("redeliver/me", 1))
    assert (await raw.next_frame()).type == codec.SUBACK
    pub = await make_client()
    await pub.publish("redeliver/me", b"important", qos=1)
    first = codec.decode_publish(await raw.next_frame())
    assert (first.payload, first.qos, first.dup) == (b"important", 1, False)
    await raw.close()  # no PUBACK
    again = await RawConnection.open(emulator, transport)
    connack = await raw_connect(again, "no-ack", clean=False)
    assert connack.body[0] == 1  # session present
    second = codec.decode_publish(await again.next_frame())
    assert (second.payload, second.dup, second.packet_id) == (b"important", True, first.packet_id)
    await again.send(codec.encode_puback(second.packet_id or 0))
    await again.close()


async def test_keepalive_timeout_publishes_will(
    emulator: Emulator, transport: str, make_client: ClientFactory
) -> None:
    watcher = await make_client()
    await watcher.subscribe("wills/ka", 1)
    await watcher.subscribe("$aws/events/presence/disconnected/silent", 1)
    raw = await RawConnection.open(emulator, transport)
    await raw_connect(raw, "silent", keepalive=1, will=("wills/ka", b"timed out"))
    # Silence: after 1.5 x 1 s the broker gives up on the client.
    assert (await watcher.message_on("wills/ka")).payload == b"timed out"
    event = (await watcher.message_on("$aws/events/presence/disconnected/silent")).json()
    assert event["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"
    await raw.wait_closed_by_broker()
    await raw.close()


async def test_persistent_session_expires(transport: str, start_emulator: EmulatorStarter) -> None:
    emulator = await start_emulator(session_expiry=0.2, connect_rate=0)  # reconnects at once
    expired: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    emulator.broker.expiry_listeners.append(lambda cid: expired.done() or expired.set_result(cid))
    raw = await RawConnection.open(emulator, transport)
    await raw_connect(raw, "short-lived", clean=False)
    await raw.close()
    async with asyncio.timeout(5):
        assert await expired == "short-lived"
    again = await RawConnection.open(emulator, transport)
    connack = await raw_connect(again, "short-lived", clean=False)
    assert connack.body[0] == 0  # no session present any more
    await again.close()


BAD_INPUTS = {
    "garbage": b"\xff\xfe\xfd\xfc\x00\x01garbage",
    "reserved-type": b"\x00\x00",
    "not-connect-first": publish_packet("a/b", b"x"),
    "truncated-connect": connect_packet("trunc")[:9],
    "malformed-length": b"\x10\xff\xff\xff\xff\xff",
    "oversized": b"\x30" + encode_length(200 * 1024 * 1024),
    "second-connect": connect_packet("twice") + connect_packet("twice"),
    "bad-protocol-level": connect_packet("old", level=3),
    "qos3-publish": connect_packet("q3") + b"\x36\x05" + mqtt_string("a") + b"\x00\x01",
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
async def test_bad_input_drops_only_that_connection(
    emulator: Emulator,
    transport: str,
    make_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.INFO)
    bystander = await make_client("bystander")
    await bystander.subscribe("alive/#", 1)
    raw = await RawConnection.open(emulator, transport)
    await raw.send(BAD_INPUTS[kind])
    if kind == "truncated-connect":
        await raw.close()  # the rest never comes
    else:
        await raw.wait_closed_by_broker()
        await raw.close()
    # The broker and the other clients carry on.
    await bystander.publish("alive/check", kind.encode(), qos=1)
    assert (await bystander.next_message()).payload == kind.encode()
    fresh = await make_client()
    await fresh.subscribe("alive/fresh", 0)
    await fresh.publish("alive/fresh", b"ok")
    assert (await fresh.message_on("alive/fresh")).payload == b"ok"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
