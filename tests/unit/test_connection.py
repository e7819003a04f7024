"""A client connection end to end over in-memory links: the real ``IoTBroker``, its
``Connection`` driver and ``MqttProtocol``, no sockets. Timers are configured in
milliseconds (keep-alive factor, session expiry), so each test takes a few at most.

The pure protocol, with a fake clock, is tested in test_connection_protocol.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from emulator.broker import codec
from emulator.broker.broker import IoTBroker
from emulator.broker.codec import Frame, FrameReader, Publish
from emulator.config import Config
from emulator.testing import connect_packet, mqtt_string, publish_packet
from emulator.transport.memory import MemoryLink, link_pair

WAIT = 2.0  # seconds; every wait here ends in milliseconds unless something is broken


def subscribe_packet(packet_id: int, *filters: tuple[str, int]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(mqtt_string(f) + bytes((q,)) for f, q in filters)
    return b"\x82" + codec.encode_length(len(body)) + body


def puback_packet(packet_id: int) -> bytes:
    return codec.encode_puback(packet_id)


class Peer:
    """The client's end of an in-memory link to the broker, reading whole frames."""

    def __init__(self, broker: IoTBroker, peer_port: int = 50000) -> None:
        self.link, server_end = link_pair(peer_port=peer_port)
        self.server_end = server_end
        self.task = asyncio.create_task(broker.serve_link(server_end))
        self._reader = FrameReader(1 << 20)
        self._frames: list[Frame] = []
        self._ended = False

    def send(self, data: bytes) -> None:
        self.link.write(data)

    async def next(self) -> Frame:
        async with asyncio.timeout(WAIT):
            while not self._frames:
                data = await self.link.read()
                if not data:
                    raise EOFError("the broker closed the connection")
                self._frames += self._reader.feed(data)
        return self._frames.pop(0)

    async def publish(self) -> Publish:
        frame = await self.next()
        assert frame.type == codec.PUBLISH, codec.PACKET_NAMES[frame.type]
        return codec.decode_publish(frame)

    async def message_on(self, topic: str) -> Publish:
        while True:
            publish = await self.publish()
            if publish.topic == topic:
                return publish

    async def closed_by_broker(self) -> list[Frame]:
        """The frames left before the broker closed the link; fails if it does not."""
        async with asyncio.timeout(WAIT):
            while data := await self.link.read():
                self._frames += self._reader.feed(data)
            await self.task
        left, self._frames = self._frames, []
        return left

    async def connect(
        self,
        client_id: str,
        clean: bool = True,
        keepalive: int = 60,
        will: tuple[str, bytes] | None = None,
    ) -> bool:
        """CONNECT; the CONNACK's session-present flag."""
        self.send(connect_packet(client_id, keepalive=keepalive, clean=clean, will=will))
        connack = await self.next()
        assert connack.type == codec.CONNACK
        assert connack.body[1] == 0, f"refused: {connack.body[1]}"
        return connack.body[0] == 1

    async def subscribe(self, *filters: tuple[str, int], packet_id: int = 1) -> bytes:
        self.send(subscribe_packet(packet_id, *filters))
        suback = await self.next()
        assert suback.type == codec.SUBACK
        return suback.body[2:]

    def drop(self) -> None:
        """End the stream without DISCONNECT (an abnormal end)."""
        self.link.close()

    async def ended(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.task


@pytest.fixture
async def broker() -> AsyncIterator[IoTBroker]:
    # Not about the quotas: take-overs reconnect at once, keep-alives are short.
    broker = IoTBroker(
        Config(keepalive_factor=0.02, session_expiry=0.05, connect_rate=0, keepalive_min=1)
    )
    await broker.start()
    yield broker
    await broker.stop()


async def watcher(broker: IoTBroker, *filters: str) -> Peer:
    """A client that sees lifecycle events and ``filters``; no keep-alive limit."""
    peer = Peer(broker, peer_port=1)
    await peer.connect("watcher", keepalive=0)
    wanted = ("$aws/events/#", *filters)
    assert await peer.subscribe(*((f, 0) for f in wanted)) == bytes(len(wanted))
    return peer


async def test_connect_answers_connack_and_reports_connected(broker: IoTBroker) -> None:
    events = await watcher(broker)
    client = Peer(broker, peer_port=4242)
    assert await client.connect("dev-1") is False
    event = json.loads((await events.message_on("$aws/events/presence/connected/dev-1")).payload)
    assert (event["clientId"], event["ipAddress"], event["versionNumber"]) == (
        "dev-1",
        "127.0.0.1",
        0,
    )
    assert broker.connection_count == 2


async def test_takeover_ends_the_old_connection_with_duplicate_clientid(
    broker: IoTBroker,
) -> None:
    events = await watcher(broker)
    old = Peer(broker)
    await old.connect("twin", will=("wills/twin", b"old one gone"))
    old_connected = json.loads(
        (await events.message_on("$aws/events/presence/connected/twin")).payload
    )
    new = Peer(broker)
    await new.connect("twin")
    gone = json.loads((await events.message_on("$aws/events/presence/disconnected/twin")).payload)
    assert gone["disconnectReason"] == "DUPLICATE_CLIENTID"
    assert gone["sessionIdentifier"] == old_connected["sessionIdentifier"]
    assert gone["versionNumber"] == old_connected["versionNumber"]
    back = json.loads((await events.message_on("$aws/events/presence/connected/twin")).payload)
    assert back["versionNumber"] == old_connected["versionNumber"] + 1
    assert await old.closed_by_broker() == []
    # The new connection works, and holds the one session of the client ID.
    new.send(b"\xc0\x00")  # PINGREQ
    assert (await new.next()).type == codec.PINGRESP
    assert list(broker.iot_sessions) == ["watcher", "twin"]


async def test_will_is_published_on_an_abnormal_end(broker: IoTBroker) -> None:
    wills = await watcher(broker, "wills/#")
    client = Peer(broker)
    await client.connect("w-1", will=("wills/w-1", b"gone"))
    client.drop()
    will = await wills.message_on("wills/w-1")
    assert (will.topic, will.payload) == ("wills/w-1", b"gone")
    await client.ended()


async def test_no_will_after_disconnect(broker: IoTBroker) -> None:
    events = await watcher(broker, "wills/#", "marker")
    client = Peer(broker)
    await client.connect("w-2", will=("wills/w-2", b"should not appear"))
    client.send(codec.DISCONNECT_BYTES)
    await client.closed_by_broker()
    event = await events.message_on("$aws/events/presence/disconnected/w-2")
    assert json.loads(event.payload)["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    client2 = Peer(broker)
    await client2.connect("marker")
    client2.send(publish_packet("marker", b"m"))
    while (event := await events.publish()).topic != "marker":
        assert event.topic != "wills/w-2"


async def test_keep_alive_timeout_publishes_the_will(broker: IoTBroker) -> None:
    events = await watcher(broker, "wills/#")
    client = Peer(broker)
    # keep-alive 1 s x the fixture's factor 0.02: 20 ms of silence ends the connection.
    await client.connect("silent", keepalive=1, will=("wills/silent", b"timed out"))
    assert (await events.message_on("wills/silent")).payload == b"timed out"
    event = json.loads(
        (await events.message_on("$aws/events/presence/disconnected/silent")).payload
    )
    assert event["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"
    await client.closed_by_broker()


async def test_persistent_session_is_kept_then_expires(broker: IoTBroker) -> None:
    expired: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_expiry(client_id: str) -> None:
        if not expired.done():
            expired.set_result(client_id)

    broker.expiry_listeners.append(on_expiry)
    client = Peer(broker)
    assert await client.connect("p-1", clean=False) is False
    await client.subscribe(("kept/+", 1))
    client.drop()
    await client.ended()
    assert "p-1" in broker.iot_sessions
    again = Peer(broker)
    assert await again.connect("p-1", clean=False) is True  # session present
    again.drop()
    await again.ended()
    async with asyncio.timeout(WAIT):
        assert await expired == "p-1"
    assert "p-1" not in broker.iot_sessions
    assert broker.topic_subscriptions.match("kept/x") == []
    last = Peer(broker)
    assert await last.connect("p-1", clean=False) is False


async def test_qos1_redelivered_with_dup_and_stored_while_away(broker: IoTBroker) -> None:
    sub = Peer(broker)
    await sub.connect("r-1", clean=False)
    assert await sub.subscribe(("redeliver/#", 1)) == b"\x01"
    pub = Peer(broker)
    await pub.connect("r-pub")
    pub.send(publish_packet("redeliver/a", b"first", qos=1, packet_id=7))
    assert (await pub.next()) == Frame(codec.PUBACK, 0, b"\x00\x07")
    first = await sub.publish()
    assert (first.payload, first.qos, first.dup) == (b"first", 1, False)
    sub.drop()  # no PUBACK: "first" stays in flight
    await sub.ended()
    pub.send(publish_packet("redeliver/b", b"while away", qos=1, packet_id=8))
    await pub.next()
    back = Peer(broker)
    assert await back.connect("r-1", clean=False) is True
    again = await back.publish()
    assert (again.payload, again.dup, again.packet_id) == (b"first", True, first.packet_id)
    stored = await back.publish()
    assert (stored.payload, stored.dup, stored.qos) == (b"while away", False, 1)
    assert stored.packet_id != first.packet_id
    back.send(puback_packet(again.packet_id or 0) + puback_packet(stored.packet_id or 0))
    back.send(b"\xc0\x00")
    assert (await back.next()).type == codec.PINGRESP
    assert broker.iot_sessions["r-1"].inflight == {}


async def test_packet_identifiers_are_distinct_while_in_flight(broker: IoTBroker) -> None:
    sub = Peer(broker)
    await sub.connect("ids")
    await sub.subscribe(("ids/t", 1))
    pub = Peer(broker)
    await pub.connect("ids-pub")
    pub.send(publish_packet("ids/t", b"1", qos=1, packet_id=1) * 3)
    ids = [(await sub.publish()).packet_id for _ in range(3)]
    assert ids == [1, 2, 3]
    sub.send(puback_packet(2))
    pub.send(publish_packet("ids/t", b"4", qos=1, packet_id=1))
    assert (await sub.publish()).packet_id == 4


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("PUBLISH before CONNECT", publish_packet("t", b"x")),
        ("PINGREQ before CONNECT", b"\xc0\x00"),
        ("not MQTT at all", b"\xff\xfe\xfd\xfc\x00\x01garbage"),
        ("reserved packet type 0", b"\x00\x00"),
    ],
)
async def test_refused_before_connect(broker: IoTBroker, name: str, first: bytes) -> None:
    client = Peer(broker)
    client.send(first)
    assert await client.closed_by_broker() == [], name
    assert broker.iot_sessions == {}


@pytest.mark.parametrize(
    ("name", "packet"),
    [
        ("second CONNECT", connect_packet("again")),
        ("PUBREC", b"\x50\x02\x00\x01"),
        ("PUBREL", b"\x62\x02\x00\x01"),
        ("PUBCOMP", b"\x70\x02\x00\x01"),
        ("SUBACK from a client", b"\x90\x03\x00\x01\x00"),
        ("PUBLISH with QoS 3", b"\x36\x05\x00\x01t\x00\x01"),
    ],
)
async def test_refused_when_connected(broker: IoTBroker, name: str, packet: bytes) -> None:
    events = await watcher(broker)
    client = Peer(broker)
    await client.connect("bad-1")
    client.send(packet)
    assert await client.closed_by_broker() == [], name
    event = json.loads((await events.message_on("$aws/events/presence/disconnected/bad-1")).payload)
    assert event["disconnectReason"] == "CLIENT_ERROR"


async def test_qos2_is_ignored_without_an_answer(broker: IoTBroker) -> None:
    client = Peer(broker)
    await client.connect("q2")
    await client.subscribe(("q2/t", 0))
    client.send(publish_packet("q2/t", b"two", qos=2, packet_id=5))
    client.send(subscribe_packet(9, ("q2/other", 2)))
    client.send(b"\xc0\x00")
    # Neither a PUBACK/PUBREC, the message, nor a SUBACK: the PINGRESP comes first.
    assert (await client.next()).type == codec.PINGRESP


async def test_publish_before_subscribe_in_one_read_is_not_delivered_to_it(
    broker: IoTBroker,
) -> None:
    """Packets take effect in order even when one read brings several."""
    client = Peer(broker)
    await client.connect("order")
    client.send(
        publish_packet("order/t", b"before", qos=0)
        + subscribe_packet(1, ("order/t", 0))
        + publish_packet("order/t", b"after", qos=0)
    )
    assert (await client.next()).type == codec.SUBACK
    assert (await client.publish()).payload == b"after"


async def test_stop_ends_every_connection(broker: IoTBroker) -> None:
    clients = [Peer(broker, peer_port=port) for port in range(3)]
    for i, client in enumerate(clients):
        await client.connect(f"s-{i}")
    await broker.stop()
    for client in clients:
        await client.closed_by_broker()
    assert broker.connection_count == 0
    late = Peer(broker)
    assert await late.closed_by_broker() == []


async def test_links_are_closed_on_both_ends() -> None:
    client, server = link_pair()
    client.write(b"abc")
    client.close()
    assert await server.read() == b"abc"
    assert await server.read() == b""
    assert isinstance(server, MemoryLink) and server.closed
