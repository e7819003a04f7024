"""MQTT 5 flow control of the retained messages a SUBSCRIBE sends, in the pure broker: the
client's Receive Maximum bounds them like any other QoS 1 delivery, and one the client's
Maximum Packet Size keeps from being sent holds no in-flight slot. Found with the AWS CRT
client (tests/integration/test_mqtt5_crt.py), whose Receive Maximum and manual PUBACKs
show what is in flight."""

from __future__ import annotations

import struct

from emulator.broker import codec, codec5
from emulator.broker import properties as p
from emulator.broker.protocol import MqttProtocol
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
