"""MQTT 5 in the pure broker, what the AWS CRT client (tests/integration/test_mqtt5_crt.py)
found: the retained messages a SUBSCRIBE sends keep to the client's Receive Maximum like
any other QoS 1 delivery, and one the client's Maximum Packet Size keeps from being sent
holds no in-flight slot; a client that sets Request Problem Information to 0 gets no
Reason String on a PUBACK."""

from __future__ import annotations

import struct

from emulator.broker import codec, codec5
from emulator.broker import properties as p
from emulator.broker.auth import ClientIdentity, Decision
from emulator.broker.protocol import ConnState, MqttProtocol
from tests.unit.test_connection_protocol import NOW, World, messages, writes
from tests.unit.test_mqtt5_state import connected5, frames, publish5, publish_from, sent, subscribe5


def retain(world: World, sender: MqttProtocol, topic: str, payload: bytes, packet_id: int) -> None:
    packet = codec5.encode_publish(topic.encode(), payload, 1, True, packet_id, False, b"\x00")
    for message in messages(sender.receive(packet, NOW)):
        world.state.retain(message, NOW)


def puback(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


def test_retained_messages_on_subscribe_keep_to_the_clients_receive_maximum() -> None:
    """Receive Maximum 1 and three exact filters with retained QoS 1 messages: one is sent
    with the SUBACK, the next after each PUBACK (MQTT 5, 3.3.4: the server sends no more
    unacknowledged QoS 1 PUBLISH packets than the client's Receive Maximum)."""
    world = World()
    sender, _, _ = connected5(world, "sender")
    for n, topic in enumerate(("ret/a", "ret/b", "ret/c"), 1):
        retain(world, sender, topic, topic.encode(), n)
    client, link, _ = connected5(world, "slow", {p.RECEIVE_MAXIMUM: 1})
    out = client.receive(subscribe5(1, ("ret/a", 1), ("ret/b", 1), ("ret/c", 1)), NOW)
    first = [codec5.decode_publish(f)[0] for f in frames(writes(out)) if f.type == codec.PUBLISH]
    assert [m.topic for m in first] == ["ret/a"], "one in flight, as the client asked"
    assert first[0].retain and first[0].packet_id is not None
    client.receive(puback(first[0].packet_id), NOW)
    [(second, _)] = sent(link)
    assert (second.topic, second.retain) == ("ret/b", True)
    assert second.packet_id is not None
    client.receive(puback(second.packet_id), NOW)
    assert [m.topic for m, _ in sent(link)] == ["ret/c"]


def test_a_retained_message_over_the_maximum_packet_size_holds_no_inflight_slot() -> None:
    """Not sent (too big for the client), so never acknowledged: with Receive Maximum 1 it
    kept every later QoS 1 message of the connection waiting."""
    world = World()
    sender, _, _ = connected5(world, "sender")
    retain(world, sender, "big/r", b"x" * 600, 1)
    client, link, _ = connected5(world, "small", {p.RECEIVE_MAXIMUM: 1, p.MAXIMUM_PACKET_SIZE: 512})
    out = client.receive(subscribe5(1, ("big/r", 1), ("live", 1)), NOW)
    assert not [f for f in frames(writes(out)) if f.type == codec.PUBLISH]
    publish_from(world, sender, publish5("live", b"after", 1, 2))
    assert [(m.topic, m.payload) for m, _ in sent(link)] == [("live", b"after")]


class DenyPublishOn:
    def __init__(self, topic: str) -> None:
        self.topic = topic

    def check(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        return Decision(not (action == "iot:Publish" and resource == self.topic), "test")


def test_no_reason_string_on_puback_when_the_client_asks_for_no_problem_information() -> None:
    """MQTT 5, 3.1.2.11.7: with Request Problem Information 0 the server MUST NOT send a
    Reason String on any packet but PUBLISH, CONNACK and DISCONNECT; the PUBACK 0x87 of a
    denied publish keeps its reason code. With the default (1), the reason is given."""
    world = World()
    world.state.set_authorizer(DenyPublishOn("denied/t"))
    for problem_info, reason_string in ((0, None), (1, "not authorized to publish on 'denied/t'")):
        client, _, _ = connected5(world, f"c{problem_info}", {p.REQUEST_PROBLEM_INFO: problem_info})
        out = client.receive(publish5("denied/t", b"x", 1, 7), NOW)
        (frame,) = frames(writes(out))
        assert frame.type == codec.PUBACK and frame.body[:3] == b"\x00\x07\x87"
        props, _ = p.decode(frame.body, 3, p.ACK_PROPERTIES, "PUBACK")
        assert props.get(p.REASON_STRING) == reason_string
        assert client.state is ConnState.CONNECTED
