"""Packets pipelined behind CONNECT (MQTT 3.1.1 section 3.1.4: "Clients are allowed to send
further Control Packets immediately after sending a CONNECT Packet"), written in one
``send()`` over TCP and in one WebSocket message: handled in order once the connection is
accepted, discarded when it is refused."""

from __future__ import annotations

from emulator.app import Emulator
from emulator.broker import codec
from emulator.testing import connect_packet, publish_packet
from tests.integration.conftest import ClientFactory
from tests.integration.raw import RawConnection
from tests.integration.test_broker_raw import subscribe_packet


async def test_subscribe_behind_connect_in_one_send(
    emulator: Emulator, transport: str, make_client: ClientFactory
) -> None:
    raw = await RawConnection.open(emulator, transport)
    try:
        await raw.send(connect_packet("pipe-sub") + subscribe_packet("pipe/sub", 1, packet_id=7))
        connack = await raw.next_frame()
        assert connack.type == codec.CONNACK and connack.body[1] == 0
        suback = await raw.next_frame()
        assert suback.type == codec.SUBACK and suback.body == b"\x00\x07\x01"
        publisher = await make_client("pipe-publisher")
        await publisher.publish("pipe/sub", b"after", qos=1)
        delivered = codec.decode_publish(await raw.next_frame())
        assert (delivered.topic, delivered.payload) == ("pipe/sub", b"after")
    finally:
        await raw.close()


async def test_publish_behind_connect_in_one_send(
    emulator: Emulator, transport: str, make_client: ClientFactory
) -> None:
    subscriber = await make_client("pipe-subscriber")
    await subscriber.subscribe("pipe/pub", 1)
    raw = await RawConnection.open(emulator, transport)
    try:
        await raw.send(connect_packet("pipe-pub") + publish_packet("pipe/pub", b"hi", 1, 9))
        connack = await raw.next_frame()
        assert connack.type == codec.CONNACK and connack.body[1] == 0
        puback = await raw.next_frame()
        assert puback.type == codec.PUBACK and codec.decode_packet_id(puback) == 9
        received = await subscriber.message_on("pipe/pub")
        assert received.payload == b"hi"
    finally:
        await raw.close()


async def test_packets_behind_connect_are_handled_in_order(
    emulator: Emulator, transport: str
) -> None:
    """SUBSCRIBE then PUBLISH to that filter, behind CONNECT in the same send: the
    subscription exists when the PUBLISH is handled, so the client gets its own message."""
    raw = await RawConnection.open(emulator, transport)
    try:
        await raw.send(
            connect_packet("pipe-order")
            + subscribe_packet("pipe/order", 1, packet_id=3)
            + publish_packet("pipe/order", b"mine", 1, 4)
        )
        connack = await raw.next_frame()
        assert connack.type == codec.CONNACK and connack.body[1] == 0
        suback = await raw.next_frame()
        assert suback.type == codec.SUBACK and suback.body == b"\x00\x03\x01"
        rest = [await raw.next_frame(), await raw.next_frame()]
        puback = next(f for f in rest if f.type == codec.PUBACK)
        assert codec.decode_packet_id(puback) == 4
        delivered = codec.decode_publish(next(f for f in rest if f.type == codec.PUBLISH))
        assert (delivered.topic, delivered.payload) == ("pipe/order", b"mine")
    finally:
        await raw.close()


async def test_packets_behind_a_refused_connect_are_discarded(
    emulator: Emulator, transport: str, make_client: ClientFactory
) -> None:
    subscriber = await make_client("pipe-watcher")
    await subscriber.subscribe("pipe/refused", 0)
    raw = await RawConnection.open(emulator, transport)
    try:  # protocol level 3 (MQTT 3.1) is refused: CONNACK 1, then the connection ends
        await raw.send(
            connect_packet("pipe-refused", level=3) + publish_packet("pipe/refused", b"x")
        )
        connack = await raw.next_frame()
        assert connack.type == codec.CONNACK and connack.body[1] == 1
        await raw.wait_closed_by_broker()
    finally:
        await raw.close()
    publisher = await make_client("pipe-marker")
    await publisher.publish("pipe/refused", b"marker", qos=1)
    # The first message the watcher gets is the marker: the pipelined PUBLISH went nowhere.
    assert (await subscriber.next_message()).payload == b"marker"
