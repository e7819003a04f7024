"""``MqttProtocol`` alone: bytes in, outputs out, with a fake clock and fake identifiers.

No event loop and no driver: these tests call ``receive``/``timed_out``/``end`` as the
driver would and look at what comes back (writes, messages to publish, links to close,
expiry timers to start). Over in-memory links with the driver: test_connection.py.
"""

from __future__ import annotations

import itertools
import json

import pytest

from emulator.broker import codec
from emulator.broker.lifecycle import DisconnectReason
from emulator.broker.protocol import (
    ACCEPTED,
    CONNECT_TIMEOUT_MS,
    CloseLink,
    ConnState,
    MqttProtocol,
    Output,
    StartExpiry,
    StartResend,
)
from emulator.broker.quotas import BrokerQuotas
from emulator.broker.state import BrokerState
from emulator.limits import PublishCheck
from emulator.messages import InboundMessage
from emulator.testing import connect_packet, mqtt_string, publish_packet
from emulator.transport.memory import MemoryLink

NOW = 1_700_000_000_000


def subscribe_packet(packet_id: int, *filters: tuple[str, int]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(mqtt_string(f) + bytes((q,)) for f, q in filters)
    return b"\x82" + codec.encode_length(len(body)) + body


class World:
    """One ``BrokerState`` and the connections to it, with counted fake UUIDs."""

    def __init__(self, quotas: BrokerQuotas | None = None) -> None:
        # Not about the quotas unless a test says so: a client ID may reconnect at once.
        self.state = BrokerState(quotas=quotas or BrokerQuotas(connect_interval_ms=0))
        self.check = PublishCheck()
        self._ids = itertools.count(1)

    def new_uuid(self) -> str:
        return f"00000000-0000-0000-0000-{next(self._ids):012d}"

    def protocol(self, link: MemoryLink | None = None) -> MqttProtocol:
        return MqttProtocol(self.state, self.check, link or MemoryLink(), self.new_uuid, NOW, 1.5)

    def connected(
        self,
        client_id: str,
        keepalive: int = 60,
        clean: bool = True,
        will: tuple[str, bytes] | None = None,
    ) -> tuple[MqttProtocol, list[Output]]:
        protocol = self.protocol()
        out = protocol.receive(connect_packet(client_id, keepalive, clean, will), NOW)
        assert protocol.state is ConnState.CONNECTED
        return protocol, out


def state_of(protocol: MqttProtocol) -> ConnState:
    """The state, read through a call (mypy would keep an earlier assert's narrowing)."""
    return protocol.state


def writes(out: list[Output]) -> list[bytes]:
    return [o for o in out if isinstance(o, bytes)]


def decode(data: bytes) -> codec.Publish:
    (frame,) = codec.FrameReader(1 << 16).feed(data)
    return codec.decode_publish(frame)


def messages(out: list[Output]) -> list[InboundMessage]:
    return [o for o in out if isinstance(o, InboundMessage)]


def test_the_table_of_accepted_packets() -> None:
    assert ACCEPTED[ConnState.AWAITING_CONNECT] == {codec.CONNECT}
    assert ACCEPTED[ConnState.CONNECTED] == {
        codec.PUBLISH,
        codec.PUBACK,
        codec.SUBSCRIBE,
        codec.UNSUBSCRIBE,
        codec.PINGREQ,
        codec.DISCONNECT,
    }
    assert not ACCEPTED[ConnState.CLOSING] and not ACCEPTED[ConnState.CLOSED]


def test_connect_answers_connack_and_emits_connected_with_the_given_time() -> None:
    world = World()
    protocol = world.protocol()
    assert protocol.deadline == NOW + CONNECT_TIMEOUT_MS
    out = protocol.receive(connect_packet("dev-1", keepalive=40), NOW)
    assert out[0] == codec.encode_connack(False, 0)
    (event,) = messages(out)
    assert event.topic == "$aws/events/presence/connected/dev-1"
    body = json.loads(event.payload)
    assert (body["timestamp"], body["sessionIdentifier"], body["versionNumber"]) == (
        NOW,
        "00000000-0000-0000-0000-000000000001",
        0,
    )
    # AWS IoT: the connection ends after 1.5 x the keep-alive without a packet.
    assert protocol.deadline == NOW + 60_000
    protocol.receive(b"\xc0", NOW + 9_000)  # any bytes restart the wait
    assert protocol.deadline == NOW + 69_000


def test_connect_must_arrive_in_time_however_it_trickles_in() -> None:
    protocol = World().protocol()
    packet = connect_packet("slow")
    for i, byte in enumerate(packet[:-1]):
        assert protocol.receive(bytes((byte,)), NOW + i * 1000) == []
        assert protocol.deadline == NOW + CONNECT_TIMEOUT_MS


def test_keep_alive_timeout_ends_with_the_will_and_the_reason() -> None:
    protocol, _ = World().connected("silent", keepalive=4, will=("wills/silent", b"bye"))
    protocol.timed_out()
    assert protocol.state is ConnState.CLOSING
    assert protocol.close_reason is DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT
    out = protocol.end(NOW + 6000)
    will, event = messages(out)
    assert (will.topic, will.payload, will.client_id, will.timestamp_ms) == (
        "wills/silent",
        b"bye",
        "silent",
        NOW + 6000,
    )
    body = json.loads(event.payload)
    assert body["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"
    assert body["timestamp"] == NOW + 6000
    assert state_of(protocol) is ConnState.CLOSED
    assert protocol.end(NOW) == []  # once


def test_disconnect_discards_the_will() -> None:
    protocol, _ = World().connected("polite", will=("wills/polite", b"no"))
    assert protocol.receive(codec.DISCONNECT_BYTES, NOW) == []
    assert protocol.close_reason is DisconnectReason.CLIENT_INITIATED_DISCONNECT
    (event,) = messages(protocol.end(NOW))
    assert json.loads(event.payload)["clientInitiatedDisconnect"] is True


def test_connection_lost_publishes_the_will() -> None:
    protocol, _ = World().connected("lost", will=("wills/lost", b"w"))
    protocol.connection_lost()
    will, event = messages(protocol.end(NOW))
    assert will.topic == "wills/lost"
    assert json.loads(event.payload)["disconnectReason"] == "CONNECTION_LOST"


def test_takeover_closes_the_old_link_and_reports_its_session() -> None:
    world = World()
    old_link = MemoryLink()
    old = world.protocol(old_link)
    old.receive(connect_packet("twin", will=("wills/twin", b"old")), NOW)
    new = world.protocol()
    out = new.receive(connect_packet("twin"), NOW + 1)
    assert out[0] == codec.encode_connack(False, 0)
    gone, hello = messages(out)
    body = json.loads(gone.payload)
    assert (body["disconnectReason"], body["sessionIdentifier"], body["versionNumber"]) == (
        "DUPLICATE_CLIENTID",
        "00000000-0000-0000-0000-000000000001",
        0,
    )
    assert json.loads(hello.payload)["versionNumber"] == 1
    assert CloseLink(old_link) in out
    # No exception: the old connection is told, and is closing.
    assert old.state is ConnState.CLOSING
    assert old.close_reason is DisconnectReason.DUPLICATE_CLIENTID
    assert old.receive(publish_packet("t", b"late"), NOW) == []
    (will,) = messages(old.end(NOW + 2))  # the will, but no second disconnected event
    assert will.topic == "wills/twin"
    assert world.state.sessions["twin"].owner is new


def test_persistent_session_goes_offline_with_an_expiry_and_resumes() -> None:
    world = World()
    protocol, _ = world.connected("p", clean=False)
    protocol.receive(subscribe_packet(1, ("p/t", 1)), NOW)
    protocol.connection_lost()
    out = protocol.end(NOW)
    assert StartExpiry("p", 1) in out
    session = world.state.sessions["p"]
    assert session.owner is None and session.subscriptions == {"p/t": 1}
    world.state.deliver("p/t", b"stored", 1, world.state.subscriptions.match("p/t"))
    back, out = world.connected("p", clean=False)
    assert out[0] == codec.encode_connack(True, 0)
    # The stored message goes out on the broker's resend timer, not in the handshake.
    assert out[-1] == StartResend(session, back)
    assert world.state.resend_next(session) is False
    assert [(o.topic, o.payload) for o in session.inflight.values()] == [("p/t", b"stored")]
    # The timer of the earlier absence finds the session back and does nothing.
    assert world.state.expire("p", 1) is None
    back.connection_lost()
    assert StartExpiry("p", 2) in back.end(NOW)
    assert world.state.expire("p", 1) is None
    assert world.state.expire("p", 2) is session
    assert "p" not in world.state.sessions


def test_publish_is_acknowledged_then_published_with_the_clock() -> None:
    protocol, _ = World().connected("pub")
    out = protocol.receive(publish_packet("a/b", b"hi", qos=1, packet_id=9), NOW + 5)
    assert out[0] == codec.encode_puback(9)
    assert out[1] == InboundMessage(
        "a/b", b"hi", 1, False, "pub", "anonymous", NOW + 5, source_ip="127.0.0.1"
    )


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("a/+/b", b"x", DisconnectReason.CLIENT_ERROR),
        ("big", b"x" * (128 * 1024 + 1), DisconnectReason.CLIENT_ERROR),
        ("$aws/events/presence/connected/x", b"x", DisconnectReason.FORBIDDEN_ACCESS),
    ],
)
def test_a_refused_publish_ends_the_connection(
    topic: str, payload: bytes, reason: DisconnectReason
) -> None:
    protocol, _ = World().connected("bad")
    out = protocol.receive(
        publish_packet(topic, payload) + publish_packet("never/handled", b""), NOW
    )
    assert out == []
    assert protocol.close_reason is reason


def test_packets_before_connect_are_refused_without_a_session() -> None:
    world = World()
    protocol = world.protocol()
    assert protocol.receive(publish_packet("t", b"x"), NOW) == []
    assert protocol.state is ConnState.CLOSING
    assert protocol.end(NOW) == []
    assert world.state.sessions == {}


def test_connect_timeout_refuses_the_connection() -> None:
    protocol = World().protocol()
    protocol.timed_out()
    assert protocol.state is ConnState.CLOSING
    assert protocol.end(NOW) == []


@pytest.mark.parametrize(
    ("packet", "code"),
    [
        (connect_packet("", clean=False), 2),  # MQTT-3.1.3-8
        (connect_packet("x" * 129), 2),  # AWS IoT: client IDs up to 128 bytes
        (connect_packet("old", level=3), 1),  # MQTT 3.1 is not spoken
    ],
)
def test_connect_refused_with_a_connack_code(packet: bytes, code: int) -> None:
    world = World()
    protocol = world.protocol()
    assert protocol.receive(packet, NOW) == [codec.encode_connack(False, code)]
    assert protocol.state is ConnState.CLOSING
    assert world.state.sessions == {}


def test_an_empty_client_id_with_a_clean_session_gets_one() -> None:
    world = World()
    protocol = world.protocol()
    protocol.receive(connect_packet(""), NOW)
    assert list(world.state.sessions) == ["auto-00000000000000000000000000000001"]


def test_second_connect_is_a_client_error() -> None:
    protocol, _ = World().connected("twice")
    assert protocol.receive(connect_packet("twice"), NOW) == []
    assert protocol.close_reason is DisconnectReason.CLIENT_ERROR


def test_qos2_publish_and_subscribe_get_no_answer() -> None:
    protocol, _ = World().connected("q2")
    out = protocol.receive(
        publish_packet("t", b"x", qos=2, packet_id=3) + subscribe_packet(4, ("t", 2)), NOW
    )
    assert out == []
    assert protocol.state is ConnState.CONNECTED


def test_subscribe_waits_for_the_messages_published_before_it() -> None:
    """One read with PUBLISH then SUBSCRIBE: the driver applies the publish first."""
    world = World()
    protocol, _ = world.connected("order")
    out = protocol.receive(
        publish_packet("order/t", b"1") + subscribe_packet(1, ("order/t", 0)), NOW
    )
    assert [m.payload for m in messages(out)] == [b"1"]
    assert protocol.pending
    assert world.state.subscriptions.match("order/t") == []
    out = protocol.receive(b"", NOW)
    assert out[0] == codec.encode_suback(1, [0])
    assert not protocol.pending
    assert world.state.subscriptions.match("order/t") == [("order", 0)]


def test_subscribe_sends_the_retained_message_of_an_exact_topic() -> None:
    world = World()
    world.state.retain(InboundMessage("r/t", b"kept", 1, True), NOW)
    protocol, _ = world.connected("r")
    out = protocol.receive(subscribe_packet(1, ("r/t", 1), ("r/#", 1)), NOW)
    suback, retained = writes(out)
    assert suback == codec.encode_suback(1, [1, 1])
    publish = decode(retained)
    assert (publish.topic, publish.payload, publish.retain, publish.packet_id) == (
        "r/t",
        b"kept",
        True,
        1,
    )
    (event,) = messages(out)
    assert json.loads(event.payload)["topics"] == ["r/t", "r/#"]


def test_puback_clears_the_message_in_flight() -> None:
    world = World()
    protocol, _ = world.connected("acker")
    protocol.receive(subscribe_packet(1, ("q/t", 1)), NOW)
    world.state.deliver("q/t", b"m", 1, world.state.subscriptions.match("q/t"))
    session = world.state.sessions["acker"]
    assert list(session.inflight) == [1]
    protocol.receive(codec.encode_puback(1), NOW)
    assert session.inflight == {}


def test_unsubscribe_removes_the_filters() -> None:
    world = World()
    protocol, _ = world.connected("u")
    protocol.receive(subscribe_packet(1, ("u/a", 0), ("u/b", 0)), NOW)
    body = b"\x00\x02" + mqtt_string("u/a")
    out = protocol.receive(b"\xa2" + codec.encode_length(len(body)) + body, NOW)
    assert out[0] == codec.encode_unsuback(2)
    assert world.state.sessions["u"].subscriptions == {"u/b": 0}
    assert world.state.subscriptions.match("u/a") == []
