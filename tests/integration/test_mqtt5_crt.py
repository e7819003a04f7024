"""MQTT 5 with the AWS CRT client of the AWS IoT Device SDK v2 (``awscrt.mqtt5.Client``),
over plain TCP and WebSocket (no TLS, as the SDK's own tests connect): the acceptance
scenarios of test_mqtt5.py (paho) where the CRT API allows: connect and the negotiated
settings, user properties and correlation data, message expiry, topic aliases both ways
(``TopicAliasingOptions``), shared subscriptions, request/response, MQTT 5 and 3.1.1
(paho) together, and a rule reading user properties and republishing with headers
(aws-iot-current.md, sections 1, 2 and 5); and, since the CRT client lets a test hold
its PUBACKs, the client's Receive Maximum, with its Maximum Packet Size.

The CRT client does not show the packets it sends; the outbound topic alias test runs it
through ``Relay``, a TCP relay keeping the bytes the client sent, and reads its PUBLISH
packets there. The scenarios share one emulator per module; their client IDs and topics
carry a number of their own."""

from __future__ import annotations

import itertools
import json
import math
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from awscrt import mqtt5
from awscrt.mqtt5 import QoS
from paho.mqtt.enums import CallbackAPIVersion

from emulator.broker import codec5
from emulator.broker import properties as props5
from emulator.broker.codec import PUBLISH, FrameReader
from emulator.pytest_plugin import EmulatorHandle, ThreadedEmulatorFactory, emulator_in_thread

TIMEOUT = 10.0
_ids = itertools.count()

# A rule reading the MQTT 5 properties and republishing with headers (shared by the
# MQTT 5 tests of paho-mqtt, mqtt.js and the AWS CRT client).
RULES = (Path(__file__).parent / "mqtt5_rules.yaml").read_text()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


class Crt:
    """An ``awscrt.mqtt5.Client`` whose callbacks feed futures and queues the test waits on."""

    def __init__(
        self,
        host: str,
        port: int,
        websocket: bool,
        client_id: str | None = None,
        *,
        aliasing: mqtt5.TopicAliasingOptions | None = None,
        session: mqtt5.ClientSessionBehaviorType | None = None,
        session_expiry: int | None = None,
        on_publish: Callable[[mqtt5.PublishReceivedData], None] | None = None,
        **connect: Any,
    ) -> None:
        self.messages: queue.Queue[mqtt5.PublishPacket] = queue.Queue()
        self.connected: Future[mqtt5.LifecycleConnectSuccessData] = Future()
        self.stopped: Future[None] = Future()
        self.disconnects: queue.Queue[mqtt5.LifecycleDisconnectData] = queue.Queue()
        self.handshake_paths: list[str] = []
        self.client_id = unique("crt") if client_id is None else client_id

        def on_success(data: mqtt5.LifecycleConnectSuccessData) -> None:
            if not self.connected.done():
                self.connected.set_result(data)

        def on_failure(data: mqtt5.LifecycleConnectFailureData) -> None:
            if not self.connected.done():
                self.connected.set_exception(data.exception or RuntimeError("connect failed"))

        def on_stopped(_data: mqtt5.LifecycleStoppedData) -> None:
            if not self.stopped.done():
                self.stopped.set_result(None)

        transform: Callable[[mqtt5.WebsocketHandshakeTransformArgs], None] | None = None
        if websocket:

            def transform(transform_args: mqtt5.WebsocketHandshakeTransformArgs) -> None:
                # The request as the CRT makes it (no signing: the emulator needs none);
                # the CRT calls this with a keyword argument, hence its name.
                self.handshake_paths.append(transform_args.http_request.path)
                transform_args.set_done()

        self.client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=host,
                port=port,
                websocket_handshake_transform=transform,
                connect_options=mqtt5.ConnectPacket(
                    client_id=self.client_id,
                    session_expiry_interval_sec=session_expiry,
                    **{"keep_alive_interval_sec": 60, **connect},
                ),
                session_behavior=session,
                topic_aliasing_options=aliasing,
                on_publish_callback_fn=on_publish or self._received,
                on_lifecycle_event_connection_success_fn=on_success,
                on_lifecycle_event_connection_failure_fn=on_failure,
                on_lifecycle_event_disconnection_fn=self.disconnects.put,
                on_lifecycle_event_stopped_fn=on_stopped,
                min_reconnect_delay_ms=5_000,
            )
        )
        self.client.start()

    def _received(self, data: mqtt5.PublishReceivedData) -> None:
        self.messages.put(data.publish_packet)

    def connack(self) -> mqtt5.LifecycleConnectSuccessData:
        return self.connected.result(TIMEOUT)

    def subscribe(self, topic_filter: str, qos: QoS = QoS.AT_LEAST_ONCE) -> list[int]:
        packet = mqtt5.SubscribePacket([mqtt5.Subscription(topic_filter, qos)])
        suback = self.client.subscribe(packet).result(TIMEOUT)
        return [int(code) for code in suback.reason_codes]

    def publish(
        self, topic: str, payload: bytes | str, qos: QoS = QoS.AT_LEAST_ONCE, **props: Any
    ) -> mqtt5.PublishCompletionData:
        packet = mqtt5.PublishPacket(payload=payload, qos=qos, topic=topic, **props)
        return self.client.publish(packet).result(TIMEOUT)

    def next(self) -> mqtt5.PublishPacket:
        return self.messages.get(timeout=TIMEOUT)

    def close(self) -> None:
        if not self.stopped.done():
            self.client.stop()
            if self.connected.done() and not self.connected.exception():
                self.stopped.result(TIMEOUT)  # else a failed test: its own error says why


class Paho311:
    """A paho MQTT 3.1.1 client, the other side of the mixed-version tests."""

    def __init__(self, host: str, port: int, websocket: bool) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=unique("paho311"),
            protocol=paho.MQTTv311,
            transport="websockets" if websocket else "tcp",
        )
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connacks: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[Any] = queue.Queue()
        self.client.on_connect = lambda c, u, flags, rc, props: self.connacks.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(codes)
        if websocket:
            self.client.ws_set_options(path="/mqtt")
        self.client.connect(host, port, keepalive=60)
        self.client.loop_start()
        assert self.connacks.get(timeout=TIMEOUT) == 0

    def subscribe(self, topic_filter: str) -> list[Any]:
        self.client.subscribe(topic_filter, 1)
        return list(self.subacks.get(timeout=TIMEOUT))

    def next(self) -> paho.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Relay:
    """A TCP relay to the emulator that keeps what its client sent (``sent``)."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.sent = bytearray()
        self._sockets: list[socket.socket] = [self._server]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._server.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self._target))
            self._sockets += [near, far]
            threading.Thread(target=self._pump, args=(near, far, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(far, near, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, keep: bool) -> None:
        try:
            while data := source.recv(65536):
                if keep:
                    with self._lock:
                        self.sent += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def publishes(self, websocket: bool) -> list[tuple[str, int | None]]:
        """The PUBLISH packets the client sent: topic (empty: the alias alone) and alias."""
        with self._lock:
            data = bytes(self.sent)
        if websocket:
            data = _websocket_payloads(data)
        reader = FrameReader(1 << 20)
        out = []
        for frame in reader.feed(data):
            if frame[0] == PUBLISH:
                publish, props = codec5.decode_publish(frame)
                out.append((publish.topic, props.get(props5.TOPIC_ALIAS)))
        return out

    def close(self) -> None:
        for s in self._sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the pumps: close() alone would not
            except OSError:
                pass
            s.close()


def _websocket_payloads(data: bytes) -> bytes:
    """The payload bytes of a client's WebSocket frames (masked, RFC 6455 5.2), after the
    HTTP upgrade request."""
    pos = data.index(b"\r\n\r\n") + 4
    out = bytearray()
    while pos < len(data):
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        masked = data[pos + 1] & 0x80
        pos += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        mask = data[pos : pos + 4] if masked else b"\x00\x00\x00\x00"
        pos += 4 if masked else 0
        payload = data[pos : pos + length]
        pos += length
        if opcode in (0x0, 0x2):  # continuation, binary
            out += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(out)


@pytest.fixture(scope="module")
def iot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorHandle]:
    rules = tmp_path_factory.mktemp("crt") / "rules.yaml"
    rules.write_text(RULES)
    with emulator_in_thread(request.config.rootpath, rules=[str(rules)], backend="auto") as handle:
        yield handle


@pytest.fixture(params=["tcp", "websockets"])
def websocket(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "websockets")


@pytest.fixture
def port(iot: EmulatorHandle, websocket: bool) -> int:
    found = iot.emulator.http_port if websocket else iot.mqtt_port
    assert found is not None
    return found


@pytest.fixture
def crt(iot: EmulatorHandle, port: int, websocket: bool) -> Iterator[Callable[..., Crt]]:
    made: list[Crt] = []

    def make(client_id: str | None = None, *, via: int | None = None, **kwargs: Any) -> Crt:
        client = Crt(iot.host, via or port, websocket, client_id, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def paho311(iot: EmulatorHandle, port: int, websocket: bool) -> Iterator[Callable[[], Paho311]]:
    made: list[Paho311] = []

    def make() -> Paho311:
        client = Paho311(iot.host, port, websocket)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def users(packet: mqtt5.PublishPacket) -> list[tuple[str, str]]:
    return [(u.name, u.value) for u in packet.user_properties or []]


def test_connect_and_the_negotiated_settings(crt: Any, websocket: bool) -> None:
    """AWS: Maximum QoS 1, Topic Alias Maximum 8, Receive Maximum 100, Subscription
    Identifiers unavailable, the session expiry lowered to 3600 s, the keep-alive raised to
    30 s, an assigned client ID for an empty one (which the CRT client then uses)."""
    client = crt(
        "",
        session=mqtt5.ClientSessionBehaviorType.CLEAN,
        session_expiry=100_000,
        keep_alive_interval_sec=5,
        aliasing=mqtt5.TopicAliasingOptions(
            inbound_behavior=mqtt5.InboundTopicAliasBehaviorType.ENABLED, inbound_cache_max_size=5
        ),
    )
    data = client.connack()
    connack, settings = data.connack_packet, data.negotiated_settings
    assert connack.reason_code == mqtt5.ConnectReasonCode.SUCCESS
    assert connack.maximum_qos == QoS.AT_LEAST_ONCE
    assert connack.topic_alias_maximum == 8
    assert connack.receive_maximum == 100
    assert connack.subscription_identifiers_available is False
    assert connack.session_expiry_interval_sec == 3600
    assigned = connack.assigned_client_identifier
    assert assigned and assigned.startswith("auto-") and "/" not in assigned
    assert settings.client_id == assigned
    assert settings.maximum_qos == QoS.AT_LEAST_ONCE
    assert settings.session_expiry_interval_sec == 3600
    assert settings.receive_maximum_from_server == 100
    assert settings.topic_alias_maximum_to_server == 8
    assert settings.topic_alias_maximum_to_client == 5
    assert settings.subscription_identifiers_available is False
    assert settings.rejoined_session is False
    assert connack.server_keep_alive_sec == 30  # AWS: a keep-alive of 1-29 s is 30 s
    assert settings.server_keep_alive_sec == 30
    if websocket:
        assert client.handshake_paths == ["/mqtt"]


def test_user_properties_and_correlation_data_round_trip(crt: Any) -> None:
    topic = unique("props")
    receiver = crt()
    receiver.connack()
    assert receiver.subscribe(topic) == [1]
    sender = crt()
    sender.connack()
    done = sender.publish(
        topic,
        b"{}",
        user_properties=[
            mqtt5.UserProperty("a", "1"),
            mqtt5.UserProperty("b", "2"),
            mqtt5.UserProperty("a", "3"),
        ],
        correlation_data_bytes=b"\x00\x01corr\xff",
        content_type="application/json",
        response_topic="reply/here",
        payload_format_indicator=mqtt5.PayloadFormatIndicator.AWS_MQTT5_PFI_UTF8,
        message_expiry_interval_sec=60,
    )
    assert done.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
    m = receiver.next()
    assert (m.topic, m.payload) == (topic, b"{}")
    assert users(m) == [("a", "1"), ("b", "2"), ("a", "3")]
    assert m.correlation_data_bytes == b"\x00\x01corr\xff"
    assert m.content_type == "application/json"
    assert m.response_topic == "reply/here"
    assert m.payload_format_indicator == mqtt5.PayloadFormatIndicator.AWS_MQTT5_PFI_UTF8
    assert m.message_expiry_interval_sec is not None and 58 <= m.message_expiry_interval_sec <= 60
    sender.publish(topic, b"bare")
    bare = receiver.next()
    assert bare.payload == b"bare"
    assert (bare.user_properties, bare.correlation_data_bytes, bare.content_type) == (
        None,
        None,
        None,
    )
    assert bare.message_expiry_interval_sec is None


def test_receive_maximum_holds_back_qos1_until_acknowledged(crt: Any) -> None:
    """The client's Receive Maximum (1): one QoS 1 message in flight until the client
    acknowledges it (the CRT client's manual PUBACK control); QoS 0 is not held back."""
    base = unique("flow")
    held: queue.Queue[tuple[bytes, Any]] = queue.Queue()

    def on_publish(data: mqtt5.PublishReceivedData) -> None:
        take = data.acquire_publish_acknowledgement_control
        held.put((data.publish_packet.payload, take() if take else None))

    receiver = crt(receive_maximum=1, on_publish=on_publish)
    receiver.connack()
    receiver.subscribe(f"{base}/q1")
    receiver.subscribe(f"{base}/marker", QoS.AT_MOST_ONCE)
    sender = crt()
    sender.connack()
    for n in range(3):
        sender.publish(f"{base}/q1", str(n))
    sender.publish(f"{base}/marker", b"marker", QoS.AT_MOST_ONCE)
    got = [held.get(timeout=TIMEOUT), held.get(timeout=TIMEOUT)]
    assert [payload for payload, _ in got] == [b"0", b"marker"], "one QoS 1 message in flight"
    for expected in (b"1", b"2"):
        receiver.client.invoke_publish_acknowledgement(got[0][1])
        got = [held.get(timeout=TIMEOUT)]
        assert got[0][0] == expected
    receiver.client.invoke_publish_acknowledgement(got[0][1])


def test_retained_messages_on_subscribe_keep_to_the_receive_maximum(crt: Any) -> None:
    """Retained QoS 1 messages sent on a SUBSCRIBE count against the client's Receive
    Maximum too: one, then the next after its PUBACK."""
    base = unique("flow-retained")
    sender = crt()
    sender.connack()
    for name in ("a", "b"):
        sender.publish(f"{base}/{name}", name, retain=True)
    held: queue.Queue[tuple[bytes, Any]] = queue.Queue()

    def on_publish(data: mqtt5.PublishReceivedData) -> None:
        take = data.acquire_publish_acknowledgement_control
        held.put((data.publish_packet.payload, take() if take else None))

    receiver = crt(receive_maximum=1, on_publish=on_publish)
    receiver.connack()
    receiver.subscribe(f"{base}/marker", QoS.AT_MOST_ONCE)
    packet = mqtt5.SubscribePacket(
        [mqtt5.Subscription(f"{base}/{name}", QoS.AT_LEAST_ONCE) for name in ("a", "b")]
    )
    assert receiver.client.subscribe(packet).result(TIMEOUT).reason_codes == [1, 1]
    sender.publish(f"{base}/marker", b"marker", QoS.AT_MOST_ONCE)
    got = [held.get(timeout=TIMEOUT), held.get(timeout=TIMEOUT)]
    assert [payload for payload, _ in got] == [b"a", b"marker"], "one QoS 1 message in flight"
    receiver.client.invoke_publish_acknowledgement(got[0][1])
    payload, handle = held.get(timeout=TIMEOUT)
    assert payload == b"b"
    receiver.client.invoke_publish_acknowledgement(handle)
    for name in ("a", "b"):
        sender.publish(f"{base}/{name}", b"", retain=True)  # cleared


def test_maximum_packet_size_of_the_client(crt: Any) -> None:
    """A message over the client's Maximum Packet Size (512, AWS's smallest) is not sent to
    it, retained or live, and takes none of its Receive Maximum (1): the next one is."""
    base = unique("small")
    sender = crt()
    sender.connack()
    sender.publish(f"{base}/retained", b"x" * 600, retain=True)
    receiver = crt(maximum_packet_size=512, receive_maximum=1)
    receiver.connack()
    receiver.subscribe(f"{base}/retained")
    receiver.subscribe(f"{base}/live")
    assert sender.publish(f"{base}/live", b"x" * 600).puback.reason_code == 0
    sender.publish(f"{base}/live", b"fits")
    assert receiver.next().payload == b"fits"
    sender.publish(f"{base}/retained", b"", retain=True)  # cleared


def test_a_denied_qos1_publish_gets_puback_0x87_and_stays_connected(
    iot_emulators: ThreadedEmulatorFactory, tmp_path: Path, websocket: bool
) -> None:
    """AWS lists 0x87 among its PUBACK codes: the client stays connected. The Reason String
    comes with it unless the client set Request Problem Information to 0."""
    policy = tmp_path / "policy.json"
    policy.write_text(
        '{"Version": "2012-10-17", "Statement": ['
        '{"Effect": "Allow", "Action": ["iot:Connect", "iot:Subscribe", "iot:Receive"],'
        ' "Resource": "*"},'
        '{"Effect": "Allow", "Action": "iot:Publish",'
        ' "Resource": "arn:aws:iot:*:*:topic/allowed/*"}]}'
    )
    iot = iot_emulators(rules=[], policies=[str(policy)])
    port = iot.emulator.http_port if websocket else iot.mqtt_port
    assert port is not None
    made = []
    try:
        for problem_info in (None, False):
            client = Crt(iot.host, port, websocket, request_problem_information=problem_info)
            made.append(client)
            client.connack()
            client.subscribe("allowed/t")
            puback = client.publish("denied/t", b"x").puback
            assert puback.reason_code == mqtt5.PubackReasonCode.NOT_AUTHORIZED
            if problem_info is None:
                assert puback.reason_string == "not authorized to publish on 'denied/t'"
            else:
                assert puback.reason_string is None
            client.publish("allowed/t", b"still here")
            assert client.next().payload == b"still here"
            assert client.disconnects.empty()
    finally:
        for client in made:
            client.close()


def test_message_expiry_is_passed_on_as_what_is_left(crt: Any, paho311: Any) -> None:
    """AWS forwards the Message Expiry Interval as the time left and does not deliver an
    expired message: here to an offline persistent session that comes back (the CRT client
    rejoining it), after the time that proves it has passed."""
    topic = unique("expiry")
    away_id = unique("crt-away")
    persistent = {"session_expiry": 60, "session": mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS}
    first = crt(away_id, **persistent)
    first.connack()
    first.subscribe(topic)
    sender = crt()
    sender.connack()
    # Published once the broker has the session offline: its lifecycle event says when.
    sender.subscribe(f"$aws/events/presence/disconnected/{away_id}")
    first.close()
    assert sender.next().topic == f"$aws/events/presence/disconnected/{away_id}"
    away_since = time.monotonic()
    sender.publish(topic, b"short", message_expiry_interval_sec=1)
    sender.publish(topic, b"five", message_expiry_interval_sec=5)
    sender.publish(topic, b"plain")
    # Not waiting for an event: the expiry under test needs the time to pass.
    time.sleep(1.2)
    back = crt(away_id, **persistent)
    assert back.connack().negotiated_settings.rejoined_session is True
    first_back = back.next()
    away = time.monotonic() - away_since
    assert first_back.payload == b"five", "the 1 s message expired while the client was away"
    left = first_back.message_expiry_interval_sec
    assert left is not None and 5 - math.ceil(away) <= left <= 3, (away, left)
    plain = back.next()
    assert (plain.payload, plain.message_expiry_interval_sec) == (b"plain", None)


def test_outbound_topic_aliases_lru(crt: Any, port: int, websocket: bool) -> None:
    """The CRT client's LRU aliasing within the CONNACK's maximum (8), past 8 topics
    binding its least recently used aliases again: the broker resolves them all, the
    receiver gets every topic in full."""
    base = unique("alias-out")
    receiver = crt()
    receiver.connack()
    receiver.subscribe(f"{base}/+")
    relay = Relay(port)
    try:
        sender = crt(
            via=relay.port,
            aliasing=mqtt5.TopicAliasingOptions(
                outbound_behavior=mqtt5.OutboundTopicAliasBehaviorType.LRU
            ),
        )
        assert sender.connack().negotiated_settings.topic_alias_maximum_to_server == 8
        topics = ["a", "a", "b", "a", "b", *(f"t{n}" for n in range(9)), "t8", "a"]
        for n, t in enumerate(topics):
            done = sender.publish(f"{base}/{t}", str(n))
            assert done.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
        got = [receiver.next() for _ in topics]
        assert [(m.topic, m.payload) for m in got] == [
            (f"{base}/{t}", str(n).encode()) for n, t in enumerate(topics)
        ]
        sent = relay.publishes(websocket)
        assert sent[:5] == [(f"{base}/a", 1), ("", 1), (f"{base}/b", 2), ("", 1), ("", 2)], sent
        assert [topic for topic, _ in sent].count("") == 4, sent  # the repeats, alias alone
        assert all(alias is not None and 1 <= alias <= 8 for _, alias in sent), sent
        bound: dict[int | None, set[str]] = {}
        for topic, alias in sent:
            if topic:
                bound.setdefault(alias, set()).add(topic)
        assert any(len(topics) > 1 for topics in bound.values()), f"no alias bound again: {sent}"
        assert sender.disconnects.empty()
    finally:
        relay.close()


def test_inbound_topic_aliases_to_a_client_that_takes_them(crt: Any) -> None:
    """The client allows 2 aliases: the broker aliases the first two topics (the CRT client
    resolves them and shows the alias), a third topic goes in full."""
    base = unique("alias-in")
    receiver = crt(
        aliasing=mqtt5.TopicAliasingOptions(
            inbound_behavior=mqtt5.InboundTopicAliasBehaviorType.ENABLED, inbound_cache_max_size=2
        )
    )
    assert receiver.connack().negotiated_settings.topic_alias_maximum_to_client == 2
    receiver.subscribe(f"{base}/+")
    sender = crt()
    sender.connack()
    topics = "aabaccb"
    for n, t in enumerate(topics):
        sender.publish(f"{base}/{t}", str(n))
    got = [receiver.next() for _ in topics]
    assert [(m.topic, m.payload) for m in got] == [
        (f"{base}/{t}", str(n).encode()) for n, t in enumerate(topics)
    ]
    assert [m.topic_alias for m in got] == [1, 1, 2, 1, None, None, 2]
    assert receiver.disconnects.empty()


def test_shared_subscription_spreads_the_messages(crt: Any, paho311: Any) -> None:
    """Each message goes to one member of the group (two CRT MQTT 5 members and a paho
    3.1.1 one), in turn."""
    base = unique("jobs")
    group = f"$share/{unique('g')}/{base}/+"
    members: list[Any] = [crt(), crt()]
    for member in members:
        member.connack()
        assert member.subscribe(group) == [1]
        member.subscribe(f"{base}-end")
    old = paho311()
    assert old.subscribe(group) == [1]
    old.subscribe(f"{base}-end")
    members.append(old)
    producer = crt()
    producer.connack()
    for n in range(9):
        producer.publish(f"{base}/{n}", str(n))
    producer.publish(f"{base}-end", "end")
    got = []
    for member in members:  # each one's messages up to the end marker, published last
        payloads = []
        while (m := member.next()).payload != b"end":
            payloads.append(int(m.payload))
        got.append(payloads)
    assert sorted(n for part in got for n in part) == list(range(9)), got
    assert [len(part) for part in got] == [3, 3, 3], got


def test_request_response_with_correlation_data(crt: Any) -> None:
    base = unique("service")
    responder = crt()
    responder.connack()
    responder.subscribe(f"{base}/requests")
    requester = crt()
    requester.connack()
    reply_to = f"{base}/replies/{requester.client_id}"
    requester.subscribe(reply_to)
    requester.publish(
        f"{base}/requests", b"ping", response_topic=reply_to, correlation_data_bytes=b"req-1"
    )
    request = responder.next()
    assert request.response_topic == reply_to
    responder.publish(
        request.response_topic, b"pong", correlation_data_bytes=request.correlation_data_bytes
    )
    reply = requester.next()
    assert (reply.topic, reply.payload, reply.correlation_data_bytes) == (
        reply_to,
        b"pong",
        b"req-1",
    )


def test_mqtt5_and_311_clients_talk_to_each_other(crt: Any, paho311: Any) -> None:
    base = unique("mixed")
    old = paho311()
    old.subscribe(f"{base}/to-old")
    new = crt()
    new.connack()
    new.subscribe(f"{base}/to-new")
    new.publish(
        f"{base}/to-old",
        b"from 5",
        user_properties=[mqtt5.UserProperty("k", "v")],
        message_expiry_interval_sec=60,
    )
    assert old.next().payload == b"from 5"
    old.client.publish(f"{base}/to-new", b"from 3.1.1", 1)
    m = new.next()
    assert m.payload == b"from 3.1.1"
    assert (m.user_properties, m.message_expiry_interval_sec, m.content_type) == (None, None, None)


def test_a_rule_reads_user_properties_and_republishes_with_headers(crt: Any) -> None:
    receiver = crt()
    receiver.connack()
    receiver.subscribe("out/tagged")
    sender = crt()
    sender.connack()
    sender.publish(
        "in/tagged",
        b"{}",
        user_properties=[mqtt5.UserProperty("tag", "red"), mqtt5.UserProperty("tag", "blue")],
        content_type="text/plain",
        correlation_data_bytes=b"c-42",
    )
    m = receiver.next()
    assert json.loads(m.payload) == {
        "tags": ["red", "blue"],
        "ct": "text/plain",
        "corr": "Yy00Mg==",
    }
    assert m.content_type == "application/json"
    assert m.correlation_data_bytes == b"c-42"
    assert users(m) == [("from-rule", "red")]
    assert m.message_expiry_interval_sec is not None
    assert 118 <= m.message_expiry_interval_sec <= 120
