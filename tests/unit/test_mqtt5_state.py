"""MQTT 5 in the pure broker (``MqttProtocol`` and ``BrokerState``), with a fake clock:
message expiry (queued, retained, passed on as what is left), shared-subscription
members in turn, the Session Expiry Interval on DISCONNECT, the delayed Last Will,
AWS's refusals with their reason codes, and the client's Maximum Packet Size.

The packets are built with our property codec; paho-mqtt, mqtt.js and the AWS CRT client
check the same codec from outside (tests/integration/test_mqtt5*.py)."""

from __future__ import annotations

import struct
from typing import Any

from emulator.broker import codec, codec5
from emulator.broker import properties as p
from emulator.broker.protocol import ConnState, MqttProtocol, Output, PublishLater
from emulator.broker.quotas import BrokerQuotas
from emulator.messages import InboundMessage
from emulator.testing import connect_packet, mqtt_string
from emulator.transport.memory import MemoryLink, link_pair
from tests.unit.test_connection_protocol import NOW, World, messages, writes


def connect5(
    client_id: str,
    props: dict[int, Any] | None = None,
    *,
    clean: bool = True,
    will: tuple[str, bytes, int, dict[int, Any]] | None = None,
) -> bytes:
    flags = 0x02 if clean else 0
    payload = mqtt_string(client_id)
    if will is not None:
        topic, message, qos, will_props = will
        flags |= 0x04 | (qos << 3)
        payload += p.encode(will_props) + mqtt_string(topic) + struct.pack("!H", len(message))
        payload += message
    body = mqtt_string("MQTT") + bytes((5, flags)) + struct.pack("!H", 60)
    body += p.encode(props or {}) + payload
    return b"\x10" + codec.encode_length(len(body)) + body


def publish5(
    topic: str,
    payload: bytes,
    qos: int = 0,
    packet_id: int = 0,
    props: dict[int, Any] | None = None,
) -> bytes:
    return codec5.encode_publish(
        topic.encode(), payload, qos, False, packet_id, False, p.encode(props or {})
    )


def subscribe5(
    packet_id: int, *filters: tuple[str, int], props: dict[int, Any] | None = None
) -> bytes:
    body = struct.pack("!H", packet_id) + p.encode(props or {})
    body += b"".join(mqtt_string(f) + bytes((o,)) for f, o in filters)
    return b"\x82" + codec.encode_length(len(body)) + body


def frames(data: list[bytes]) -> list[codec.Frame]:
    return codec.FrameReader(1 << 20).feed(b"".join(data))


def published(out: list[Output]) -> list[tuple[codec.Publish, p.Properties]]:
    return [codec5.decode_publish(f) for f in frames(writes(out)) if f.type == codec.PUBLISH]


def connected5(
    world: World, client_id: str, props: dict[int, Any] | None = None, **kwargs: Any
) -> tuple[MqttProtocol, MemoryLink, list[Output]]:
    link, client_end = link_pair()
    protocol = world.protocol(link)
    out = protocol.receive(connect5(client_id, props, **kwargs), NOW)
    assert protocol.state is ConnState.CONNECTED, out
    return protocol, client_end, out


def sent(link: MemoryLink) -> list[tuple[codec.Publish, p.Properties]]:
    """What the broker wrote to a subscriber's link (read at the client's end), as MQTT 5
    PUBLISH packets."""
    return [codec5.decode_publish(f) for f in frames([link.take()]) if f.type == codec.PUBLISH]


def publish_from(
    world: World, protocol: MqttProtocol, packet: bytes, now: int = NOW
) -> list[InboundMessage]:
    out = protocol.receive(packet, now)
    for message in messages(out):
        world.state.deliver(
            message.topic,
            message.payload,
            message.qos,
            world.state.subscriptions.match(message.topic),
            now,
            message,
        )
    return messages(out)


def test_connack_has_aws_properties_and_an_assigned_id() -> None:
    world = World()
    protocol = world.protocol()
    out = protocol.receive(connect5("", {p.SESSION_EXPIRY: 0xFFFFFFFF}, clean=False), NOW)
    (frame,) = frames(writes(out))
    assert frame.body[:2] == b"\x00\x00"  # no session present, success
    props, _ = p.decode(frame.body, 2, frozenset(p.TYPES), "CONNACK")
    assert props[p.SESSION_EXPIRY] == 3600  # lowered to AWS's maximum, and said so
    assert props[p.MAXIMUM_QOS] == 1 and props[p.TOPIC_ALIAS_MAXIMUM] == 8
    assert props[p.SUB_ID_AVAILABLE] == 0
    assert props[p.ASSIGNED_CLIENT_ID] == protocol.session.client_id  # type: ignore[union-attr]


def test_a_will_with_qos_2_is_refused_with_0x9b() -> None:
    protocol = World().protocol()
    out = protocol.receive(connect5("w", will=("t", b"bye", 2, {})), NOW)
    (frame,) = frames(writes(out))
    assert frame.type == codec.CONNACK and frame.body[1] == 0x9B
    assert protocol.state is ConnState.CLOSING


def test_expired_queued_messages_are_not_delivered_and_the_rest_carry_what_is_left() -> None:
    world = World()
    away, _, _ = connected5(world, "away", {p.SESSION_EXPIRY: 600}, clean=False)
    away.receive(subscribe5(1, ("exp/t", 1)), NOW)
    away.receive(b"\xe0\x00", NOW)  # DISCONNECT
    away.end(NOW)
    sender, _, _ = connected5(world, "sender")
    publish_from(world, sender, publish5("exp/t", b"short", 1, 1, {p.MESSAGE_EXPIRY: 1}))
    publish_from(world, sender, publish5("exp/t", b"long", 1, 2, {p.MESSAGE_EXPIRY: 100}))
    later = NOW + 2_500
    back, link, out = connected5(world, "away", {p.SESSION_EXPIRY: 600}, clean=False)
    session = back.session
    assert session is not None
    while world.state.resend_next(session, later):
        pass
    [(message, props)] = sent(link)
    assert message.payload == b"long"
    assert props[p.MESSAGE_EXPIRY] == 97  # 100 s less 2.5 s, in whole seconds


def test_an_expired_retained_message_is_not_sent_and_is_deleted() -> None:
    world = World()
    sender, _, _ = connected5(world, "sender")
    retained = codec5.encode_publish(
        b"ret/t", b"old", 0, True, 0, False, p.encode({p.MESSAGE_EXPIRY: 1})
    )
    for message in messages(sender.receive(retained, NOW)):
        world.state.retain(message, NOW)
    later, link, _ = connected5(world, "later")
    out = later.receive(subscribe5(1, ("ret/t", 0)), NOW + 1_000)
    assert not [f for f in frames(writes(out)) if f.type == codec.PUBLISH]
    assert "ret/t" not in world.state.retained


def test_shared_subscription_members_take_turns_and_an_offline_one_stores() -> None:
    world = World()
    a, link_a, _ = connected5(world, "a")
    b, link_b, _ = connected5(world, "b", {p.SESSION_EXPIRY: 600}, clean=False)
    for member in (a, b):
        member.receive(subscribe5(1, ("$share/g/jobs/#", 1)), NOW)
    sender, _, _ = connected5(world, "s")
    for n in range(4):
        publish_from(world, sender, publish5(f"jobs/{n}", str(n).encode(), 1, n + 1))
    assert [m.payload for m, _ in sent(link_a)] == [b"0", b"2"]
    assert [m.payload for m, _ in sent(link_b)] == [b"1", b"3"]
    b.receive(b"\xe0\x00", NOW)
    b.end(NOW)
    a.receive(b"\xe0\x00", NOW)
    a.end(NOW)  # clean: leaves the group
    publish_from(world, sender, publish5("jobs/9", b"9", 1, 9))
    assert [o.payload for o in world.state.sessions["b"].queued] == [b"9"]


def test_no_local_skips_the_publisher() -> None:
    world = World()
    me, link, _ = connected5(world, "me")
    me.receive(subscribe5(1, ("loop/t", 0x04), ("echo/t", 0)), NOW)
    publish_from(world, me, publish5("loop/t", b"mine"))
    publish_from(world, me, publish5("echo/t", b"echo"))
    assert [m.payload for m, _ in sent(link)] == [b"echo"]


def test_disconnect_may_not_give_a_session_expiry_to_a_session_without_one() -> None:
    world = World()
    client, _, _ = connected5(world, "c")
    out = client.receive(b"\xe0\x07\x00\x05\x11\x00\x00\x00\x3c", NOW)  # SEI 60
    (frame,) = frames(writes(out))
    assert frame.type == codec.DISCONNECT and frame.body[0] == 0x82
    assert client.state is ConnState.CLOSING


def test_disconnect_0x04_keeps_the_will_and_a_delay_postpones_it() -> None:
    world = World()
    will = ("wills/c", b"gone", 1, {p.WILL_DELAY: 30, p.USER_PROPERTY: [("k", "v")]})
    client, _, _ = connected5(world, "c", {p.SESSION_EXPIRY: 10}, clean=False, will=will)
    client.receive(b"\xe0\x01\x04", NOW)
    out = client.end(NOW)
    [later] = [o for o in out if isinstance(o, PublishLater)]
    assert later.delay == 10  # the session ends first
    assert (later.message.topic, later.message.payload) == ("wills/c", b"gone")
    assert later.message.properties is not None
    assert later.message.properties.user_properties == (("k", "v"),)


def test_a_will_without_a_session_is_published_at_once() -> None:
    world = World()
    will = ("wills/c", b"gone", 0, {p.WILL_DELAY: 30})
    client, _, _ = connected5(world, "c", will=will)
    client.connection_lost()
    out = client.end(NOW)
    assert [m.payload for m in messages(out) if m.topic == "wills/c"] == [b"gone"]


def test_qos_2_and_subscription_identifiers_end_the_connection_with_their_codes() -> None:
    world = World()
    client, _, _ = connected5(world, "c")
    out = client.receive(publish5("q/t", b"x", 2, 1), NOW)
    assert frames(writes(out))[-1].body[0] == 0x9B
    other, _, _ = connected5(world, "d")
    out = other.receive(subscribe5(1, ("a/b", 1), props={p.SUBSCRIPTION_ID: 5}), NOW)
    assert frames(writes(out))[-1].body[0] == 0xA1


def test_a_message_over_the_clients_maximum_packet_size_is_not_sent() -> None:
    world = World()
    small, link, _ = connected5(world, "small", {p.MAXIMUM_PACKET_SIZE: 600})
    small.receive(subscribe5(1, ("big/#", 0)), NOW)
    sender, _, _ = connected5(world, "s")
    publish_from(world, sender, publish5("big/1", b"x" * 1000))
    publish_from(world, sender, publish5("big/2", b"x" * 100))
    assert [m.topic for m, _ in sent(link)] == ["big/2"]


def test_a_session_is_not_resumed_under_the_other_version() -> None:
    world = World()
    v5, _, _ = connected5(world, "dev", {p.SESSION_EXPIRY: 600}, clean=False)
    v5.receive(subscribe5(1, ("x/y", 1)), NOW)
    v5.receive(b"\xe0\x00", NOW)
    v5.end(NOW)
    protocol = world.protocol()
    out = protocol.receive(connect_packet("dev", 60, False), NOW)
    assert out[0] == codec.encode_connack(False, 0)  # no session present
    assert world.state.sessions["dev"].subscriptions == {}


def test_topic_aliases_to_a_client_that_takes_them() -> None:
    world = World()
    client, link, _ = connected5(world, "c", {p.TOPIC_ALIAS_MAXIMUM: 2})
    client.receive(subscribe5(1, ("al/#", 0)), NOW)
    sender, _, _ = connected5(world, "s")
    for topic in ("al/a", "al/a", "al/b", "al/c"):
        publish_from(world, sender, publish5(topic, b"m"))
    got = [(m.topic, props.get(p.TOPIC_ALIAS)) for m, props in sent(link)]
    assert got == [("al/a", 1), ("", 1), ("al/b", 2), ("al/c", None)]


def test_a_shared_group_takes_at_most_its_quota_of_members() -> None:
    """AWS: 100 subscriptions per shared subscription group (not adjustable); the next
    member gets SUBACK 0x97 (MQTT 5) or 0x80 (3.1.1), a member already in is let alone."""
    world = World(BrokerQuotas(connect_interval_ms=0, max_group_members=2))
    members = [connected5(world, f"m{n}")[0] for n in range(3)]
    codes = []
    for member in members:
        out = member.receive(subscribe5(1, ("$share/g/t", 1)), NOW)
        (frame,) = [f for f in frames(writes(out)) if f.type == codec.SUBACK]
        codes.append(frame.body[-1])
    assert codes == [1, 1, 0x97]
    out = members[0].receive(subscribe5(2, ("$share/g/t", 0)), NOW)
    (frame,) = [f for f in frames(writes(out)) if f.type == codec.SUBACK]
    assert frame.body[-1] == 0
