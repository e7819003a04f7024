"""The tests of ``client_test5.py`` (MQTT 5) whose outcome AWS IoT documents differently,
run in an adapted form that asserts AWS's outcome; the counterpart of ``adapted311.py``.

AWS's MQTT 5 facts are those of https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html
(reference/aws-iot-current.md section 1): Maximum QoS 1, Receive Maximum 100, Server Keep
Alive (1-29 s -> 30 s, 0 or over 1200 s -> 1200 s), no subscription identifiers, a client
Maximum Packet Size under 512 bytes refused, wildcard subscriptions get no retained message.
Each function follows the suite's steps with its clients (QoS capped at 1) and waits on
events (SUBACK, PUBACK, a marker message on the same connection) instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from tests.conformance.adapter import Suite5

KEEPALIVE: Final = 2  # seconds asked by a client that then goes silent
NOT_AUTHORIZED: Final = 0x87
QOS_NOT_SUPPORTED: Final = 0x9B
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: Final = 0xA1
MIN_CLIENT_PACKET_SIZE: Final = 512  # AWS refuses a smaller client Maximum Packet Size


def _suback(callback: Any, msgid: int) -> list[int]:
    """Wait for the SUBACK of ``msgid``; its reason codes as numbers."""
    callback.wait_for(f"SUBACK {msgid}", lambda: any(m == msgid for m, _ in callback.subscribeds))
    return next([rc.value for rc in codes] for m, codes in callback.subscribeds if m == msgid)


def _options(s: Suite5, qos: int, **kwargs: Any) -> Any:
    return s.module.MQTTV5.SubscribeOptions(qos, **kwargs)


def _properties(s: Suite5, packet: str, **values: Any) -> Any:
    formats = s.module.MQTTV5
    properties = formats.Properties(getattr(formats.PacketTypes, packet))
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def _marker(s: Suite5, client: Any, callback: Any, topic: str) -> None:
    """Publish a marker on ``topic`` (subscribed) and wait for it: what the broker would have
    sent before it on this connection has arrived."""
    client.publish(topic, b"marker", 1)
    callback.wait_for("the marker", lambda: (topic, b"marker") in _received(callback))


def _received(callback: Any) -> list[tuple[str, bytes]]:
    return [(m[0], m[1]) for m in callback.messages]


def _without_marker(callback: Any) -> list[tuple[Any, ...]]:
    return [m for m in callback.messages if m[1] != b"marker"]


def retained_message(s: Suite5) -> None:
    """AWS: wildcard subscriptions get no retained message, exact ones do (mqtt.md,
    differences). The suite's ``+/+`` gets none; each exact topic gets its message, with the
    publication's user properties and RETAIN set, at the lower of the two QoS."""
    m = s.module
    aclient, callback = m.aclient, m.callback
    props = _properties(s, "PUBLISH")
    props.UserProperty = ("a", "2")
    props.UserProperty = ("c", "3")
    retained = list(m.topics[1:4])
    callback.clear()
    aclient.connect(host=s.host, port=s.port, cleanstart=True)
    aclient.publish(retained[0], b"qos 0", 0, retained=True, properties=props)
    aclient.publish(retained[1], b"qos 1", 1, retained=True, properties=props)
    last = aclient.publish(retained[2], b"qos 2", 2, retained=True, properties=props)
    callback.wait_for("PUBACK", lambda: last in callback.publisheds)
    wild = aclient.subscribe([m.wildtopics[5]], [_options(s, 2)])
    assert _suback(callback, wild) == [1]
    _marker(s, aclient, callback, m.topics[1])  # "TopicA/B" matches +/+
    assert _without_marker(callback) == [], "+/+ got a retained message"
    callback.clear()
    exact = aclient.subscribe(retained, [_options(s, 2)] * 3)
    assert _suback(callback, exact) == [1, 1, 1]
    callback.wait_for("3 retained messages", lambda: len(callback.messages) == 3)
    assert {(t, p, q, r) for t, p, q, r, *_ in callback.messages} == {
        (retained[0], b"qos 0", 0, True),
        (retained[1], b"qos 1", 1, True),
        (retained[2], b"qos 2", 1, True),
    }
    for message in callback.messages:
        assert message[5].UserProperty in ([("a", "2"), ("c", "3")], [("c", "3"), ("a", "2")])
    aclient.disconnect()


def will_message(s: Suite5) -> None:
    """AWS raises a keep-alive under 30 s to 30 s and says so in CONNACK's Server Keep Alive:
    the suite's client asks for 2 s and expects its Will within 10 s of going silent; here the
    CONNACK says 30, no Will comes by 1.5 x 2 s + 1 s, and when the connection drops the Will
    comes at once with its user properties."""
    m = s.module
    aclient, bclient, callback2 = m.aclient, m.bclient, m.callback2
    will_properties = _properties(s, "WILLMESSAGE", WillDelayInterval=0)
    will_properties.UserProperty = ("a", "2")
    will_properties.UserProperty = ("c", "3")
    callback2.clear()
    connack = aclient.connect(
        host=s.host,
        port=s.port,
        cleanstart=True,
        willFlag=True,
        willTopic=m.topics[2],
        willMessage=b"will message",
        keepalive=KEEPALIVE,
        willProperties=will_properties,
    )
    assert connack.properties.ServerKeepAlive == 30
    bclient.connect(host=s.host, port=s.port, cleanstart=False)
    assert _suback(callback2, bclient.subscribe([m.topics[2]], [_options(s, 2)])) == [1]
    with callback2.changed:  # nothing is expected: the time itself has to pass
        callback2.changed.wait_for(lambda: callback2.messages, 1.5 * KEEPALIVE + 1)
    assert callback2.messages == [], "the Will came at the keep-alive the client asked for"
    aclient.terminate()
    callback2.wait_for("the Will", lambda: callback2.messages)
    assert _received(callback2) == [(m.topics[2], b"will message")]
    assert callback2.messages[0][5].UserProperty == [("a", "2"), ("c", "3")]
    bclient.disconnect()


def keepalive(s: Suite5) -> None:
    """As ``will_message``: the suite's 5 s keep-alive is raised to 30 s (CONNACK's Server
    Keep Alive), so no Will by 1.5 x the asked value; the Will was set all the same."""
    m = s.module
    aclient, bclient, callback2 = m.aclient, m.bclient, m.callback2
    callback2.clear()
    connack = aclient.connect(
        host=s.host,
        port=s.port,
        cleanstart=True,
        keepalive=KEEPALIVE,
        willFlag=True,
        willTopic=m.topics[4],
        willMessage=b"keepalive expiry",
    )
    assert connack.properties.ServerKeepAlive == 30
    bclient.connect(host=s.host, port=s.port, cleanstart=True, keepalive=0)
    assert _suback(callback2, bclient.subscribe([m.topics[4]], [_options(s, 2)])) == [1]
    with callback2.changed:
        callback2.changed.wait_for(lambda: callback2.messages, 1.5 * KEEPALIVE + 1)
    assert callback2.messages == [], "the Will came at the keep-alive the client asked for"
    aclient.terminate()
    callback2.wait_for("the Will", lambda: callback2.messages)
    assert _received(callback2) == [(m.topics[4], b"keepalive expiry")]
    bclient.disconnect()


def server_keep_alive(s: Suite5) -> None:
    """The suite expects the Paho broker's own Server Keep Alive (60 s) for a 120 s request.
    AWS's rule: 1-29 s -> 30 s, 0 or over 1200 s -> 1200 s, anything else applies as asked
    (MQTT 5 section 3.2.2.3.14: without the property the client's value is used)."""
    aclient = s.module.aclient
    for asked, applied in ((120, 120), (5, 30), (0, 1200), (1300, 1200)):
        connack = aclient.connect(host=s.host, port=s.port, keepalive=asked, cleanstart=True)
        told = getattr(connack.properties, "ServerKeepAlive", asked)
        assert told == applied, (asked, told)
        aclient.disconnect()


def overlapping_subscriptions(s: Suite5) -> None:
    """No QoS 2 (Maximum QoS 1): the suite's subscriptions at QoS 2 and 1 are made at 1 and 0;
    the emulator sends one message at the higher QoS (MQTT 5 section 3.3.4 allows one or one
    per subscription), and no second copy comes before a later marker."""
    m = s.module
    aclient, callback = m.aclient, m.callback
    callback.clear()
    aclient.connect(host=s.host, port=s.port)
    sub = aclient.subscribe([m.wildtopics[6], m.wildtopics[0]], [_options(s, 1), _options(s, 0)])
    assert _suback(callback, sub) == [1, 0]
    aclient.publish(m.topics[3], b"overlapping topic filters", 1)
    _marker(s, aclient, callback, m.topics[3])
    assert [(p, q) for _, p, q, *_ in callback.messages] == [
        (b"overlapping topic filters", 1),
        (b"marker", 1),
    ], callback.messages
    aclient.disconnect()


def dollar_topics(s: Suite5) -> None:
    """AWS: topics starting with ``$`` are reserved; an unsupported publication to one "can
    result in a terminated connection" (reserved-topics.md). The suite's PUBLISH to
    ``$TopicA/B`` gets a DISCONNECT (Not authorized, 0x87) and reaches nobody; a ``#``
    subscriber gets none of the broker's own ``$aws/events`` topics (MQTT 5 section 4.7.2)."""
    m = s.module
    bclient, callback2 = m.bclient, m.callback2
    watcher_callback = s.recorder()
    watcher = s.new_client(b"paho-watcher", watcher_callback)
    gone = "$aws/events/presence/disconnected/myclientid2"
    watcher.connect(host=s.host, port=s.port, cleanstart=True)
    sub = watcher.subscribe([m.wildtopics[2], gone], [_options(s, 1)] * 2)
    assert _suback(watcher_callback, sub) == [1, 1]
    bclient.connect(host=s.host, port=s.port, cleanstart=True, keepalive=0)
    assert _suback(callback2, bclient.subscribe([m.wildtopics[5]], [_options(s, 2)])) == [1]
    callback2.clear()
    bclient.publish("$" + m.topics[1], b"", 1, retained=False)
    callback2.wait_for("the server's DISCONNECT", lambda: callback2.disconnects)
    assert callback2.disconnects[0]["reasonCode"].value == NOT_AUTHORIZED
    watcher_callback.wait_for("bclient's event", lambda: watcher_callback.messages_on(gone))
    assert callback2.messages == [], callback2.messages
    dollar = [t for t, *_ in watcher_callback.messages if t.startswith("$")]
    assert dollar == [gone], f"'#' matched a $ topic: {dollar}"


def _three_publications(s: Suite5, props: Any) -> list[tuple[Any, ...]]:
    """The steps of test_user_properties and test_payload_format: QoS 0, 1 and 2 (1 here)
    publications with ``props`` to a subscription at QoS 2 (1 here)."""
    m = s.module
    aclient, callback = m.aclient, m.callback
    callback.clear()
    aclient.connect(host=s.host, port=s.port, cleanstart=True)
    assert _suback(callback, aclient.subscribe([m.topics[0]], [_options(s, 2)])) == [1]
    for qos in (0, 1, 2):
        aclient.publish(m.topics[0], b"", qos, retained=False, properties=props)
    callback.wait_for("3 messages", lambda: len(callback.messages) == 3)
    aclient.disconnect()
    assert sorted(q for _, _, q, *_ in callback.messages) == [0, 1, 1], callback.messages
    return list(callback.messages)


def user_properties(s: Suite5) -> None:
    """No QoS 2: the suite's three publications arrive at QoS 0, 1 and 1 (not 0, 1, 2), each
    with its user properties in order (AWS: "order kept")."""
    props = _properties(s, "PUBLISH")
    props.UserProperty = ("a", "2")
    props.UserProperty = ("c", "3")
    for message in _three_publications(s, props):
        assert message[5].UserProperty == [("a", "2"), ("c", "3")], message


def payload_format(s: Suite5) -> None:
    """No QoS 2: as ``user_properties``, with the Payload Format Indicator and Content Type
    passed on."""
    props = _properties(s, "PUBLISH", PayloadFormatIndicator=1, ContentType="My name")
    for message in _three_publications(s, props):
        assert message[5].ContentType == "My name", message
        assert message[5].PayloadFormatIndicator == 1, message


def subscribe_failure(s: Suite5) -> None:
    """A filter the policy denies gets SUBACK 0x87 (Not authorized), one of AWS's SUBACK
    reason codes; the suite expects 0x80, and its client's decoder accepts only 3.1.1's codes
    (0, 1, 2, 0x80), so the SUBACK is read here from the socket."""
    m = s.module
    formats = m.MQTTV5
    client = m.mqtt_client.Client(b"myclientid")  # no callback: no receiver thread
    s.clients.append(client)
    client.connect(host=s.host, port=s.port, cleanstart=True)
    client.sock.settimeout(5)
    subscribe = formats.Subscribes()
    subscribe.packetIdentifier = 7
    subscribe.data.append((m.nosubscribe_topics[0], _options(s, 1)))
    client.sock.sendall(subscribe.pack())
    suback = formats.getPacket(client.sock)
    assert suback[0] >> 4 == formats.PacketTypes.SUBACK, suback
    assert suback[-1] == NOT_AUTHORIZED, suback.hex()


def subscribe_identifiers(s: Suite5) -> None:
    """AWS does not support subscription identifiers: CONNACK says Subscription Identifier
    Available 0, and a SUBSCRIBE with one gets DISCONNECT 0xA1 (MQTT 5 section 3.8.2.1.2)."""
    m = s.module
    aclient, callback = m.aclient, m.callback
    callback.clear()
    connack = aclient.connect(host=s.host, port=s.port, cleanstart=True)
    assert connack.properties.SubscriptionIdentifierAvailable == 0
    props = _properties(s, "SUBSCRIBE", SubscriptionIdentifier=456789)
    aclient.subscribe([m.topics[0]], [_options(s, 2)], properties=props)
    callback.wait_for("the server's DISCONNECT", lambda: callback.disconnects)
    code = callback.disconnects[0]["reasonCode"].value
    assert code == SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, callback.disconnects
    assert callback.subscribeds == []


def maximum_packet_size(s: Suite5) -> None:
    """AWS refuses a client Maximum Packet Size under 512 bytes (the suite asks for 64): the
    CONNECT is refused; with 512 the suite's steps hold: a PUBLISH that fits is delivered,
    one over the client's maximum is not (MQTT 5 section 3.1.2.11.4)."""
    m = s.module
    aclient, callback = m.aclient, m.callback
    callback.clear()
    props = _properties(s, "CONNECT", MaximumPacketSize=64)
    try:
        aclient.connect(host=s.host, port=s.port, cleanstart=True, properties=props)
    except AssertionError as refused:
        assert "Maximum Packet Size 64" in str(refused), refused
    else:
        raise AssertionError("a Maximum Packet Size of 64 was accepted")
    size = MIN_CLIENT_PACKET_SIZE
    props = _properties(s, "CONNECT", MaximumPacketSize=size)
    aclient.connect(host=s.host, port=s.port, cleanstart=True, properties=props)
    assert _suback(callback, aclient.subscribe([m.topics[0]], [_options(s, 2)])) == [1]
    aclient.publish(m.topics[0], b"." * (size // 2), 0)
    aclient.publish(m.topics[0], b"." * size, 1)
    _marker(s, aclient, callback, m.topics[0])
    assert [len(p) for _, p in _received(callback)] == [size // 2, len(b"marker")]
    aclient.disconnect()


def flow_control2(s: Suite5) -> None:
    """The suite publishes Receive Maximum + 1 messages at QoS 2 and expects DISCONNECT 0x93.
    AWS's CONNACK says Receive Maximum 100 and Maximum QoS 1, so the first QoS 2 PUBLISH
    already gets DISCONNECT 0x9B, QoS not supported (MQTT 5 section 3.2.2.3.4)."""
    m = s.module
    formats = m.MQTTV5
    client = m.mqtt_client.Client(b"myclientid")  # the suite's own, uncapped, no callback
    s.clients.append(client)
    connack = client.connect(host=s.host, port=s.port, cleanstart=True)
    assert connack.properties.ReceiveMaximum == 100
    assert connack.properties.MaximumQoS == 1
    client.sock.settimeout(5)
    client.publish(m.topics[0], "message 1", 2)
    answer = formats.unpackPacket(formats.getPacket(client.sock))
    assert answer.fh.PacketType == formats.PacketTypes.DISCONNECT, answer
    assert answer.reasonCode.value == QOS_NOT_SUPPORTED, answer


def subscribe_options(s: Suite5) -> None:
    """No Local and Retain As Published as the suite checks them; Retain Handling on the
    exact topics of its three retained messages instead of ``+/+`` (AWS sends no retained
    message to a wildcard subscription): 1 sends them on a new subscription only, 2 never,
    0 on every SUBSCRIBE."""
    m = s.module
    aclient, bclient, callback, callback2 = m.aclient, m.bclient, m.callback, m.callback2
    callback.clear()
    callback2.clear()
    # noLocal
    aclient.connect(host=s.host, port=s.port, cleanstart=True)
    bclient.connect(host=s.host, port=s.port, cleanstart=True)
    for client, cb in ((aclient, callback), (bclient, callback2)):
        sub = client.subscribe([m.topics[0]], [_options(s, 2, noLocal=True)])
        assert _suback(cb, sub) == [1]
    aclient.publish(m.topics[0], b"noLocal test", 1, retained=False)
    callback2.wait_for("the publication", lambda: callback2.messages)
    bclient.publish(m.topics[0], b"marker", 1)  # aclient gets it, its own came before
    callback.wait_for("bclient's marker", lambda: callback.messages)
    assert _received(callback) == [(m.topics[0], b"marker")], callback.messages
    assert _received(callback2) == [(m.topics[0], b"noLocal test")], callback2.messages
    aclient.disconnect()
    bclient.disconnect()

    # retainAsPublished
    callback.clear()
    aclient.connect(host=s.host, port=s.port, cleanstart=True)
    sub = aclient.subscribe([m.topics[0]], [_options(s, 2, retainAsPublished=True)])
    assert _suback(callback, sub) == [1]
    aclient.publish(m.topics[0], b"retain as published false", 1, retained=False)
    aclient.publish(m.topics[0], b"retain as published true", 1, retained=True)
    callback.wait_for("2 messages", lambda: len(callback.messages) == 2)
    assert [r for _, _, _, r, *_ in callback.messages] == [False, True], callback.messages
    clean = aclient.publish(m.topics[0], b"", 1, retained=True)  # the suite's cleanRetained()
    # disconnect() stops the client's reader first: a PUBACK still on its way is never read
    callback.wait_for("PUBACK", lambda: clean in callback.publisheds)
    aclient.disconnect()

    # retainHandling, on the exact topics
    retained = list(m.topics[1:4])
    callback.clear()
    aclient.connect(host=s.host, port=s.port, cleanstart=True)
    aclient.publish(retained[0], b"qos 0", 0, retained=True)
    aclient.publish(retained[1], b"qos 1", 1, retained=True)
    last = aclient.publish(retained[2], b"qos 2", 2, retained=True)
    callback.wait_for("PUBACK", lambda: last in callback.publisheds)

    def subscribe(handling: int) -> list[tuple[Any, ...]]:
        """Subscribe to the three topics; the retained messages that come for it."""
        callback.clear()
        sub = aclient.subscribe(retained, [_options(s, 2, retainHandling=handling)] * 3)
        assert _suback(callback, sub) == [1, 1, 1]
        _marker(s, aclient, callback, retained[0])
        return [msg for msg in callback.messages if msg[3]]

    assert len(subscribe(1)) == 3
    assert subscribe(1) == []
    aclient.disconnect()
    aclient.connect(host=s.host, port=s.port, cleanstart=True)
    assert subscribe(2) == []
    assert subscribe(2) == []
    aclient.disconnect()
    aclient.connect(host=s.host, port=s.port, cleanstart=True)
    assert sorted(q for _, _, q, *_ in subscribe(0)) == [0, 1, 1]
    assert sorted(q for _, _, q, *_ in subscribe(0)) == [0, 1, 1]
    aclient.disconnect()


ADAPTED: Final[dict[str, Callable[[Suite5], None]]] = {
    "test_retained_message": retained_message,
    "test_will_message": will_message,
    "test_keepalive": keepalive,
    "test_server_keep_alive": server_keep_alive,
    "test_overlapping_subscriptions": overlapping_subscriptions,
    "test_dollar_topics": dollar_topics,
    "test_user_properties": user_properties,
    "test_payload_format": payload_format,
    "test_subscribe_failure": subscribe_failure,
    "test_subscribe_identifiers": subscribe_identifiers,
    "test_maximum_packet_size": maximum_packet_size,
    "test_flow_control2": flow_control2,
    "test_subscribe_options": subscribe_options,
}
AS_WRITTEN: Final = frozenset(
    {
        "test_assigned_clientid",
        "test_basic",
        "test_client_topic_alias",
        "test_flow_control1",
        "test_offline_message_queueing",
        "test_publication_expiry",
        "test_redelivery_on_reconnect",
        "test_request_response",
        "test_server_topic_alias",
        "test_session_expiry",
        "test_shared_subscriptions",
        "test_unsubscribe",
        "test_will_delay",
        "test_zero_length_clientid",
    }
)
