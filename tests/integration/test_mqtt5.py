"""MQTT 5 with paho-mqtt (``MQTTv5``), a client nobody here wrote, over TCP and WebSocket:
CONNACK properties, message properties end to end, topic aliases, shared subscriptions,
request/response, subscription options, server DISCONNECT reason codes, delayed Last
Will, MQTT 5 and 3.1.1 clients together, and a rule reading user properties and
republishing with headers (aws-iot-current.md, sections 1, 2 and 5)."""

from __future__ import annotations

import itertools
import json
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from emulator.pytest_plugin import EmulatorHandle, ThreadedEmulatorFactory

TIMEOUT = 10.0
_ids = itertools.count()


class V5:
    """A paho MQTT 5 client whose callbacks feed queues the test waits on."""

    def __init__(
        self,
        iot: EmulatorHandle,
        transport: str,
        client_id: str | None = None,
        *,
        clean_start: bool = True,
        properties: Properties | None = None,
        will: tuple[str, bytes, Properties] | None = None,
        protocol: int = mqtt.MQTTv5,
    ) -> None:
        self.client_id = f"v5-{next(_ids)}" if client_id is None else client_id
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            transport=transport,
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connacks: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self.acks: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        client = self.client
        client.on_connect = lambda c, u, flags, rc, props: self.connacks.put((rc, props))
        client.on_message = lambda c, u, m: self.messages.put(m)
        client.on_disconnect = lambda c, u, flags, rc, props: self.disconnects.put(rc)
        client.on_publish = lambda c, u, mid, rc, props: self.acks.put((mid, rc))
        client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(codes)
        if will is not None:
            client.will_set(will[0], will[1], 1, properties=will[2])
        if transport == "websockets":
            client.ws_set_options(path="/mqtt")
            port = iot.emulator.http_port
        else:
            port = iot.mqtt_port
        assert port is not None
        if protocol == mqtt.MQTTv5:
            client.connect(
                iot.host, port, keepalive=60, clean_start=clean_start, properties=properties
            )
        else:
            client.connect(iot.host, port, keepalive=60)
        client.loop_start()

    def connack(self) -> tuple[Any, Any]:
        return self.connacks.get(timeout=TIMEOUT)

    def subscribe(self, topic: str, qos: int = 1, **options: Any) -> list[Any]:
        if options or self.client.protocol == mqtt.MQTTv5:
            self.client.subscribe(topic, options=SubscribeOptions(qos=qos, **options))
        else:
            self.client.subscribe(topic, qos)
        return self.subacks.get(timeout=TIMEOUT)

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, properties: Properties | None = None
    ) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos, properties=properties)

    def next(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def none(self) -> None:
        """Nothing more has arrived: checked after a later message proved that delivery
        got that far."""
        assert self.messages.empty(), self.messages.get_nowait().topic

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(params=["tcp", "websockets"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def iot(iot_emulators: ThreadedEmulatorFactory, tmp_path: Path) -> EmulatorHandle:
    (tmp_path / "rules.yaml").write_text(RULES)
    return iot_emulators(rules=[str(tmp_path / "rules.yaml")], backend="auto")


@pytest.fixture
def clients(iot: EmulatorHandle, transport: str) -> Iterator[Any]:
    made: list[V5] = []

    def make(client_id: str | None = None, **kwargs: Any) -> V5:
        client = V5(iot, transport, client_id, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# A rule reading the MQTT 5 properties and republishing with headers (shared by the
# MQTT 5 tests of paho-mqtt, mqtt.js and the AWS CRT client).
RULES = (Path(__file__).parent / "mqtt5_rules.yaml").read_text()


def props(**values: Any) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def connect_props(**values: Any) -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def test_connack_properties_as_aws_sends_them(clients: Any) -> None:
    """AWS: Maximum QoS 1, Topic Alias Maximum 8, Subscription Identifiers unavailable, a
    Session Expiry Interval over the maximum lowered and returned, an assigned client ID
    for an empty one."""
    client = clients("", properties=connect_props(SessionExpiryInterval=100_000))
    rc, p = client.connack()
    assert rc == 0
    assert p.MaximumQoS == 1
    assert p.TopicAliasMaximum == 8
    assert p.ReceiveMaximum == 100
    assert p.SubscriptionIdentifierAvailable == 0
    assert p.SessionExpiryInterval == 3600
    assert p.AssignedClientIdentifier.startswith("auto-")
    assert "/" not in p.AssignedClientIdentifier


def test_properties_round_trip_between_mqtt5_clients(clients: Any) -> None:
    receiver = clients()
    receiver.connack()
    receiver.subscribe("props/t")
    sender = clients()
    sender.connack()
    sender.publish(
        "props/t",
        b"{}",
        properties=props(
            UserProperty=[("a", "1"), ("b", "2"), ("a", "3")],
            CorrelationData=b"\x00\x01corr",
            ContentType="application/json",
            ResponseTopic="reply/here",
            PayloadFormatIndicator=1,
            MessageExpiryInterval=60,
        ),
    )
    m = receiver.next()
    p = m.properties
    assert p.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")]
    assert p.CorrelationData == b"\x00\x01corr"
    assert p.ContentType == "application/json"
    assert p.ResponseTopic == "reply/here"
    assert p.PayloadFormatIndicator == 1
    assert 58 <= p.MessageExpiryInterval <= 60  # what is left, in whole seconds


def test_mqtt5_and_311_clients_talk_to_each_other(clients: Any) -> None:
    old = clients(protocol=mqtt.MQTTv311)
    old.connack()
    old.subscribe("mixed/to-old")
    new = clients()
    new.connack()
    new.subscribe("mixed/to-new")
    new.publish("mixed/to-old", b"from 5", properties=props(UserProperty=[("k", "v")]))
    assert old.next().payload == b"from 5"
    old.publish("mixed/to-new", b"from 3.1.1")
    m = new.next()
    assert m.payload == b"from 3.1.1"
    assert not hasattr(m.properties, "UserProperty")


def test_topic_alias_from_the_client(clients: Any) -> None:
    receiver = clients()
    receiver.connack()
    receiver.subscribe("alias/topic")
    sender = clients()
    sender.connack()
    sender.publish("alias/topic", b"first", properties=props(TopicAlias=3)).wait_for_publish(
        TIMEOUT
    )
    sender.publish("", b"second", properties=props(TopicAlias=3))
    assert [receiver.next().payload, receiver.next().payload] == [b"first", b"second"]


def test_a_topic_alias_over_the_maximum_gets_disconnect_0x94(clients: Any) -> None:
    sender = clients()
    sender.connack()
    sender.publish("alias/topic", b"x", qos=0, properties=props(TopicAlias=9))
    assert sender.disconnects.get(timeout=TIMEOUT) == 0x94


def test_shared_subscription_spreads_the_messages(clients: Any) -> None:
    """AWS: each message goes to one member of the group; 3.1.1 clients may join too."""
    members = [clients(), clients(), clients(protocol=mqtt.MQTTv311)]
    for member in members:
        member.connack()
        assert member.subscribe("$share/workers/jobs/+")[0] == 1
    watcher = clients()
    watcher.connack()
    watcher.subscribe("jobs/+")
    producer = clients()
    producer.connack()
    for n in range(9):
        producer.publish(f"jobs/{n}", str(n).encode())
    seen = [watcher.next().payload for _ in range(9)]
    got = [sorted(int(m.next().payload) for _ in range(3)) for m in members]
    assert sorted(n for part in got for n in part) == list(range(9))
    assert all(len(part) == 3 for part in got)
    assert len(seen) == 9
    for member in members:
        member.none()


def test_request_response_with_correlation_data(clients: Any) -> None:
    responder = clients()
    responder.connack()
    responder.subscribe("service/requests")
    requester = clients()
    requester.connack()
    requester.subscribe("service/replies/me")
    requester.publish(
        "service/requests",
        b"ping",
        properties=props(ResponseTopic="service/replies/me", CorrelationData=b"req-1"),
    )
    request = responder.next()
    responder.publish(
        request.properties.ResponseTopic,
        b"pong",
        properties=props(CorrelationData=request.properties.CorrelationData),
    )
    reply = requester.next()
    assert (reply.topic, reply.payload, reply.properties.CorrelationData) == (
        "service/replies/me",
        b"pong",
        b"req-1",
    )


def test_no_local_and_retain_as_published(clients: Any) -> None:
    client = clients()
    client.connack()
    client.subscribe("opts/local", noLocal=True)
    client.subscribe("opts/rap", retainAsPublished=True)
    other = clients()
    other.connack()
    other.subscribe("opts/rap")
    client.publish("opts/local", b"mine")
    client.publish("opts/rap", b"kept", qos=1).wait_for_publish(TIMEOUT)
    other.publish("opts/rap", b"flagged").wait_for_publish(TIMEOUT)
    # rap subscriber: retained flag kept; plain subscriber: cleared
    client.client.publish("opts/rap", b"retained", 1, retain=True)
    received = [client.next() for _ in range(3)]
    assert [m.payload for m in received] == [b"kept", b"flagged", b"retained"]
    assert [m.retain for m in received] == [False, False, True]
    others = [other.next() for _ in range(3)]
    assert [m.retain for m in others] == [False, False, False]
    client.none()  # "mine" was never delivered back to its publisher


def test_retain_handling(clients: Any) -> None:
    setter = clients()
    setter.connack()
    setter.client.publish("rh/t", b"kept", 1, retain=True).wait_for_publish(TIMEOUT)
    always = clients()
    always.connack()
    always.subscribe("rh/t", retainHandling=0)
    assert always.next().payload == b"kept"
    never = clients()
    never.connack()
    never.subscribe("rh/t", retainHandling=2)
    new_only = clients()
    new_only.connack()
    new_only.subscribe("rh/t", retainHandling=1)
    assert new_only.next().payload == b"kept"
    new_only.subscribe("rh/t", retainHandling=1)  # exists now: nothing again
    setter.publish("rh/t", b"live")
    assert never.next().payload == b"live"
    assert new_only.next().payload == b"live"


def test_session_taken_over_gets_disconnect_0x8e(clients: Any) -> None:
    first = clients("same-id")
    first.connack()
    second = clients("same-id")
    second.connack()
    assert first.disconnects.get(timeout=TIMEOUT) == 0x8E


def test_denied_qos1_publish_gets_puback_0x87_and_stays_connected(
    iot_emulators: ThreadedEmulatorFactory, tmp_path: Path, transport: str
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        '{"Version": "2012-10-17", "Statement": ['
        '{"Effect": "Allow", "Action": ["iot:Connect", "iot:Subscribe", "iot:Receive"],'
        ' "Resource": "*"},'
        '{"Effect": "Allow", "Action": "iot:Publish",'
        ' "Resource": "arn:aws:iot:*:*:topic/allowed/*"}]}'
    )
    iot = iot_emulators(rules=[], policies=[str(policy)])
    client = V5(iot, transport)
    try:
        client.connack()
        client.subscribe("allowed/t")
        info = client.publish("denied/t", b"x")
        mid, rc = client.acks.get(timeout=TIMEOUT)
        assert (mid, rc) == (info.mid, 0x87)
        client.publish("allowed/t", b"still here")
        assert client.next().payload == b"still here"
    finally:
        client.close()


def test_delayed_will_is_published_after_its_delay(clients: Any) -> None:
    watcher = clients()
    watcher.connack()
    watcher.subscribe("wills/dev")
    will_props = Properties(PacketTypes.WILLMESSAGE)
    will_props.WillDelayInterval = 1
    will_props.MessageExpiryInterval = 60  # counted from when the will is published
    will_props.UserProperty = [("why", "gone")]
    device = clients(
        properties=connect_props(SessionExpiryInterval=60),
        will=("wills/dev", b"offline", will_props),
    )
    device.connack()
    device.client.disconnect(reasoncode=mqtt.ReasonCode(PacketTypes.DISCONNECT, identifier=4))
    m = watcher.next()
    assert (m.payload, m.properties.UserProperty) == (b"offline", [("why", "gone")])
    assert 58 <= m.properties.MessageExpiryInterval <= 60


def test_a_rule_reads_user_properties_and_republishes_with_headers(clients: Any) -> None:
    receiver = clients()
    receiver.connack()
    receiver.subscribe("out/tagged")
    sender = clients()
    sender.connack()
    sender.publish(
        "in/tagged",
        b"{}",
        properties=props(
            UserProperty=[("tag", "red"), ("tag", "blue")],
            ContentType="text/plain",
            CorrelationData=b"c-42",
        ),
    )
    m = receiver.next()
    assert json.loads(m.payload) == {
        "tags": ["red", "blue"],
        "ct": "text/plain",
        "corr": "Yy00Mg==",
    }
    assert m.properties.ContentType == "application/json"
    assert m.properties.CorrelationData == b"c-42"
    assert m.properties.UserProperty == [("from-rule", "red")]
    assert 118 <= m.properties.MessageExpiryInterval <= 120


def test_data_plane_publish_with_mqtt5_properties(iot: EmulatorHandle, clients: Any) -> None:
    """boto3's iot-data Publish with the MQTT 5 headers and query parameters
    (API_iotdata_Publish): an MQTT 5 subscriber gets them as properties, and
    GetRetainedMessage gives the user properties back."""
    receiver = clients()
    receiver.connack()
    receiver.subscribe("api/props")
    data = iot.boto3_client("iot-data")
    data.publish(
        topic="api/props",
        qos=1,
        retain=True,
        payload=b'{"on": true}',
        userProperties=[{"deviceName": "alpha"}, {"deviceCnt": "45"}],  # a jsonvalue header
        payloadFormatIndicator="UTF8_DATA",
        contentType="application/json",
        responseTopic="api/reply",
        correlationData="Y29ycg==",
        messageExpiry=300,
    )
    p = receiver.next().properties
    assert p.UserProperty == [("deviceName", "alpha"), ("deviceCnt", "45")]
    assert (p.PayloadFormatIndicator, p.ContentType, p.ResponseTopic) == (
        1,
        "application/json",
        "api/reply",
    )
    assert p.CorrelationData == b"corr"
    assert 298 <= p.MessageExpiryInterval <= 300
    retained = data.get_retained_message(topic="api/props")
    assert json.loads(retained["userProperties"]) == [{"deviceName": "alpha"}, {"deviceCnt": "45"}]
    with pytest.raises(data.exceptions.InvalidRequestException, match="correlation"):
        data.publish(topic="api/props", payload=b"x", correlationData="not base64!")
