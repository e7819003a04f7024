"""One client connection: CONNECT, then packets until it ends, with AWS IoT's rules.

Theory of operation
-------------------
``run()`` reads the first packet (it must be CONNECT), settles the session (take-over of
a connected client ID, resumption of a persistent session), answers CONNACK and emits the
``connected`` lifecycle event. Then one loop reads bytes, splits them into frames and
handles each inline: PUBLISH is checked (limits, reserved topics, policy) and handed to
``IoTBroker.publish``; PUBACK clears the in-flight message; SUBSCRIBE/UNSUBSCRIBE update
the trie. No task is created per packet. Any protocol error closes this connection only.

How the connection ended decides the ``disconnectReason`` and whether the Last Will is
published (every end except a DISCONNECT packet, AWS and MQTT alike).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from amqtt.adapters import ReaderAdapter
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.packet import MQTTFixedHeader
from amqtt.mqtt.subscribe import SubscribePacket
from amqtt.mqtt.unsubscribe import UnsubscribePacket

from emulator.broker import codec, lifecycle
from emulator.broker.auth import ClientIdentity
from emulator.broker.codec import Frame, FrameReader, ProtocolError
from emulator.broker.lifecycle import DisconnectReason
from emulator.broker.sessions import Session
from emulator.messages import InboundMessage
from emulator.topics import validate_topic_filter, validate_topic_name

if TYPE_CHECKING:
    from emulator.broker.broker import IoTBroker
    from emulator.transport.links import Link

log = logging.getLogger(__name__)

MAX_PAYLOAD = 128 * 1024  # AWS IoT: message payload up to 128 KB
MAX_CLIENT_ID = 128  # AWS IoT: client ID up to 128 bytes
# The largest packet we read: a 128 KB payload plus topic, packet id and length fields.
MAX_PACKET = MAX_PAYLOAD + 2 + 65535 + 2
CONNECT_TIMEOUT = 10.0  # seconds to wait for CONNECT after the socket opens

# CONNACK return codes. AWS documents that it answers 7 (not MQTT's 5) when the client is
# not authorized to connect (reference/aws-iot/mqtt.md, differences from MQTT 3.1.1).
CONNACK_ACCEPTED = 0
CONNACK_BAD_PROTOCOL = 1
CONNACK_ID_REJECTED = 2
CONNACK_NOT_AUTHORIZED_AWS = 7

# Reserved topics a client may publish to ($aws/things/... shadows, $aws/rules/... Basic Ingest);
# everything else under '$' is the broker's (lifecycle events, ...) and is refused.
PUBLISHABLE_RESERVED = ("$aws/things/", "$aws/rules/")


class _BytesReader(ReaderAdapter):
    """Feeds an already framed packet to amqtt's decoders."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = len(self._data) - self._pos
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def feed_eof(self) -> None:
        return None


async def _decode_amqtt(frame: Frame, packet_class: Any) -> object:
    data = codec.with_fixed_header(frame)
    reader = _BytesReader(data)
    header = await MQTTFixedHeader.from_stream(reader)
    return await packet_class.from_stream(reader, fixed_header=header)


class Disconnect(Exception):
    """Ends the connection with an AWS disconnect reason."""

    def __init__(self, reason: DisconnectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ClientConnection:
    def __init__(self, broker: IoTBroker, link: Link) -> None:
        self.broker = broker
        self.link = link
        self.session: Session | None = None
        self.identity: ClientIdentity | None = None
        self.keep_alive = 0
        self.will: InboundMessage | None = None
        self.frames = FrameReader(MAX_PACKET)

    @property
    def name(self) -> str:
        client = self.session.client_id if self.session else "?"
        link = self.link
        return f"client {client!r} ({link.transport_name} {link.peer_ip}:{link.peer_port})"

    # -- main loop ---------------------------------------------------------------------
    async def run(self) -> None:
        try:
            pending = await self._handshake()
        except (ProtocolError, Disconnect, TimeoutError, ConnectionError, OSError) as exc:
            log.warning(
                "refused connection from %s:%s: %s",
                self.link.peer_ip,
                self.link.peer_port,
                exc or "no CONNECT in time",
            )
            self.link.close()
            await self.link.wait_closed()
            return
        if pending is None:
            return
        reason = DisconnectReason.CONNECTION_LOST
        try:
            for frame in pending:
                self._handle(frame)
            await self._loop()
        except Disconnect as exc:
            reason = exc.reason
            if reason is not DisconnectReason.CLIENT_INITIATED_DISCONNECT:
                log.warning("closing %s: %s", self.name, exc)
        except ProtocolError as exc:
            reason = DisconnectReason.CLIENT_ERROR
            log.warning("closing %s: protocol error: %s", self.name, exc)
        except (ConnectionError, OSError):
            reason = DisconnectReason.CONNECTION_LOST
        except _TakenOver:
            reason = DisconnectReason.DUPLICATE_CLIENTID
        finally:
            self._finish(reason)
            await self.link.wait_closed()

    async def _loop(self) -> None:
        timeout = self.keep_alive * self.broker.settings.keepalive_factor or None
        link = self.link
        frames = self.frames
        while True:
            try:
                async with asyncio.timeout(timeout):
                    data = await link.read()
            except TimeoutError:
                raise Disconnect(
                    DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT,
                    f"no packet within {timeout:g} s (1.5 x keep-alive {self.keep_alive} s)",
                ) from None
            if self.session is None or self.session.link is not link:
                raise _TakenOver()
            if not data:
                return  # CONNECTION_LOST
            for frame in frames.feed(data):
                if frame.type == codec.SUBSCRIBE:
                    await self._subscribe(frame)
                elif frame.type == codec.UNSUBSCRIBE:
                    await self._unsubscribe(frame)
                else:
                    self._handle(frame)

    # -- CONNECT -----------------------------------------------------------------------
    async def _handshake(self) -> list[Frame] | None:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            frames: list[Frame] = []
            while not frames:
                data = await self.link.read()
                if not data:
                    self.link.close()
                    return None
                frames = self.frames.feed(data)
        first, rest = frames[0], frames[1:]
        if first.type != codec.CONNECT:
            raise ProtocolError(
                f"first packet is {codec.PACKET_NAMES.get(first.type)}, not CONNECT"
            )
        try:
            packet = await _decode_amqtt(first, ConnectPacket)
        except (AMQTTError, MQTTError, NoDataError, ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"malformed CONNECT: {exc}") from exc
        assert isinstance(packet, ConnectPacket)
        if packet.proto_name != "MQTT" or packet.proto_level != 4:
            # AWS IoT speaks MQTT 3.1.1 (and 5, which this emulator does not).
            self.link.write(codec.encode_connack(False, CONNACK_BAD_PROTOCOL))
            raise ProtocolError(
                f"unsupported protocol {packet.proto_name!r} level {packet.proto_level}"
            )
        client_id = packet.client_id or ""
        clean = bool(packet.clean_session_flag)
        if not client_id:
            if not clean:
                self.link.write(codec.encode_connack(False, CONNACK_ID_REJECTED))
                raise ProtocolError("empty client ID with a persistent session")
            client_id = "auto-" + uuid.uuid4().hex
        if len(client_id.encode()) > MAX_CLIENT_ID:
            self.link.write(codec.encode_connack(False, CONNACK_ID_REJECTED))
            raise ProtocolError(
                f"client ID is {len(client_id.encode())} bytes, over the limit of {MAX_CLIENT_ID}"
            )
        username = packet.username if packet.username_flag else None
        principal = getattr(self.link, "principal", None) or username or "anonymous"
        self.identity = ClientIdentity(client_id, principal, self.link.peer_ip, username)
        decision = self.broker.authorize(self.identity, "iot:Connect", client_id)
        if not decision.allowed:
            self.link.write(codec.encode_connack(False, CONNACK_NOT_AUTHORIZED_AWS))
            raise Disconnect(
                DisconnectReason.AUTH_ERROR, f"not authorized to connect as {client_id!r}"
            )
        self.keep_alive = int(packet.keep_alive)
        if packet.will_flag and packet.will_topic:
            self.will = InboundMessage(
                topic=packet.will_topic,
                payload=bytes(packet.will_message or b""),
                qos=min(int(packet.will_qos or 0), 1),
                retain=bool(packet.will_retain_flag),
                client_id=client_id,
                principal=principal,
            )
        session_present = self._attach_session(client_id, clean)
        self.link.write(codec.encode_connack(session_present, CONNACK_ACCEPTED))
        session = self.session
        assert session is not None
        log.info("connected %s clean=%s keepalive=%ss", self.name, clean, self.keep_alive)
        if lifecycle.emits_events(client_id):
            self.broker.emit_event(
                *lifecycle.connected_event(
                    client_id,
                    _now(),
                    session.session_id,
                    principal,
                    self.link.peer_ip,
                    session.version,
                )
            )
        self.broker.send_stored(session)
        return rest

    def _attach_session(self, client_id: str, clean: bool) -> bool:
        broker = self.broker
        old = broker.iot_sessions.get(client_id)
        if old is not None and old.link is not None:
            # AWS: the new connection is accepted and the previous one disconnected.
            log.warning("client ID %r connected again; closing the previous connection", client_id)
            old_link = old.link
            old.link = None
            self._emit_disconnected(old, DisconnectReason.DUPLICATE_CLIENTID)
            old_link.close()
            if old.clean:
                broker.drop_session(old)
                old = None
        session_present = False
        if old is not None:
            if old.expiry is not None:
                old.expiry.cancel()
                old.expiry = None
            if clean:
                broker.drop_session(old)
            else:
                self.session = old
                session_present = True
        if self.session is None:
            self.session = Session(client_id, clean)
            broker.iot_sessions[client_id] = self.session
        session = self.session
        session.clean = clean
        session.link = self.link
        session.identity = self.identity
        session.receive_cache.clear()
        session.session_id = str(uuid.uuid4())
        session.version = broker.next_version(client_id)
        return session_present

    # -- packets -----------------------------------------------------------------------
    def _handle(self, frame: Frame) -> None:
        kind = frame.type
        if kind == codec.PUBLISH:
            self._publish(codec.decode_publish(frame))
        elif kind == codec.PUBACK:
            session = self.session
            if session is not None:
                session.inflight.pop(codec.decode_packet_id(frame), None)
        elif kind == codec.PINGREQ:
            self.link.write(codec.PINGRESP_BYTES)
        elif kind == codec.DISCONNECT:
            self.will = None  # a clean DISCONNECT discards the Last Will
            raise Disconnect(DisconnectReason.CLIENT_INITIATED_DISCONNECT, "client disconnected")
        elif kind == codec.CONNECT:
            raise ProtocolError("second CONNECT on the same connection")
        elif kind in (codec.PUBREC, codec.PUBREL, codec.PUBCOMP):
            raise ProtocolError(f"{codec.PACKET_NAMES[kind]}: QoS 2 is not supported by AWS IoT")
        else:
            raise ProtocolError(f"unexpected {codec.PACKET_NAMES.get(kind, kind)} from a client")

    def _publish(self, publish: codec.Publish) -> None:
        session = self.session
        identity = self.identity
        assert session is not None and identity is not None
        topic = publish.topic
        if publish.qos == 2:
            # AWS: "When QoS level 2 is requested, the message broker doesn't send a PUBACK".
            log.warning(
                "ignored a QoS 2 PUBLISH on %s from %s: AWS IoT supports QoS 0 and 1",
                topic,
                self.name,
            )
            return
        if publish.qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        problem = validate_topic_name(topic)
        if problem:
            raise Disconnect(DisconnectReason.CLIENT_ERROR, f"PUBLISH refused: {problem}")
        if len(publish.payload) > MAX_PAYLOAD:
            raise Disconnect(
                DisconnectReason.CLIENT_ERROR,
                f"PUBLISH on {topic} refused: payload of {len(publish.payload)} bytes is over "
                f"the limit of {MAX_PAYLOAD}",
            )
        if topic.startswith("$") and not topic.startswith(PUBLISHABLE_RESERVED):
            raise Disconnect(
                DisconnectReason.FORBIDDEN_ACCESS,
                f"PUBLISH refused: {topic} is a reserved topic clients cannot publish to",
            )
        broker = self.broker
        if not broker.authorize(identity, "iot:Publish", topic).allowed or (
            publish.retain and not broker.authorize(identity, "iot:RetainPublish", topic).allowed
        ):
            raise Disconnect(
                DisconnectReason.FORBIDDEN_ACCESS, f"not authorized to publish on {topic}"
            )
        if publish.qos == 1 and publish.packet_id is not None:
            self.link.write(codec.encode_puback(publish.packet_id))
        broker.publish(
            InboundMessage(
                topic=topic,
                payload=publish.payload,
                qos=publish.qos,
                retain=publish.retain,
                client_id=session.client_id,
                principal=identity.principal,
                timestamp_ms=_now(),
            )
        )

    async def _subscribe(self, frame: Frame) -> None:
        session = self.session
        identity = self.identity
        assert session is not None and identity is not None
        if frame.flags != 0x02:
            raise ProtocolError("SUBSCRIBE with wrong fixed-header flags")
        try:
            packet = await _decode_amqtt(frame, SubscribePacket)
        except (AMQTTError, MQTTError, NoDataError, ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"malformed SUBSCRIBE: {exc}") from exc
        assert isinstance(packet, SubscribePacket)
        topics: list[tuple[str, int]] = list(packet.payload.topics or [])
        if not topics:
            raise ProtocolError("SUBSCRIBE without topic filters")
        if any(qos >= 2 for _, qos in topics):
            # AWS: "When QoS level 2 is requested, the message broker doesn't send a ... SUBACK".
            log.warning(
                "ignored a SUBSCRIBE with QoS 2 from %s: AWS IoT supports QoS 0 and 1", self.name
            )
            return
        codes: list[int] = []
        granted: list[tuple[str, int]] = []
        for topic_filter, qos in topics:
            problem = validate_topic_filter(topic_filter)
            if problem:
                log.warning("SUBSCRIBE to %r refused for %s: %s", topic_filter, self.name, problem)
                codes.append(codec.SUBACK_FAILURE)
                continue
            if not self.broker.authorize(identity, "iot:Subscribe", topic_filter).allowed:
                codes.append(codec.SUBACK_FAILURE)
                continue
            session.subscriptions[topic_filter] = qos
            self.broker.topic_subscriptions.add(topic_filter, session.client_id, qos)
            codes.append(qos)
            granted.append((topic_filter, qos))
        self.link.write(codec.encode_suback(packet.variable_header.packet_id, codes))
        if granted and lifecycle.emits_events(session.client_id):
            self.broker.emit_event(
                *lifecycle.subscription_event(
                    "subscribed",
                    session.client_id,
                    _now(),
                    session.session_id,
                    identity.principal,
                    [f for f, _ in granted],
                )
            )
        for topic_filter, qos in granted:
            self.broker.send_retained(session, topic_filter, qos)

    async def _unsubscribe(self, frame: Frame) -> None:
        session = self.session
        identity = self.identity
        assert session is not None and identity is not None
        try:
            packet = await _decode_amqtt(frame, UnsubscribePacket)
        except (AMQTTError, MQTTError, NoDataError, ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"malformed UNSUBSCRIBE: {exc}") from exc
        assert isinstance(packet, UnsubscribePacket)
        topics: list[str] = list(packet.payload.topics or [])
        for topic_filter in topics:
            if session.subscriptions.pop(topic_filter, None) is not None:
                self.broker.topic_subscriptions.remove(topic_filter, session.client_id)
        self.link.write(codec.encode_unsuback(packet.variable_header.packet_id))
        if topics and lifecycle.emits_events(session.client_id):
            self.broker.emit_event(
                *lifecycle.subscription_event(
                    "unsubscribed",
                    session.client_id,
                    _now(),
                    session.session_id,
                    identity.principal,
                    topics,
                )
            )

    # -- the end -----------------------------------------------------------------------
    def _finish(self, reason: DisconnectReason) -> None:
        session = self.session
        self.link.close()
        if session is None:
            return
        if self.will is not None:
            log.info("publishing the Last Will of %s (%s)", self.name, reason.value)
            will = self.will
            self.will = None
            self.broker.publish(
                InboundMessage(
                    topic=will.topic,
                    payload=will.payload,
                    qos=will.qos,
                    retain=will.retain,
                    client_id=will.client_id,
                    principal=will.principal,
                    timestamp_ms=_now(),
                )
            )
        if session.link is not self.link:
            return  # taken over: the new connection already reported our end
        session.link = None
        self._emit_disconnected(session, reason)
        log.info("disconnected %s: %s", self.name, reason.value)
        if session.clean:
            self.broker.drop_session(session)
        else:
            self.broker.schedule_expiry(session)

    def _emit_disconnected(self, session: Session, reason: DisconnectReason) -> None:
        if lifecycle.emits_events(session.client_id):
            principal = session.identity.principal if session.identity else "anonymous"
            self.broker.emit_event(
                *lifecycle.disconnected_event(
                    session.client_id,
                    _now(),
                    session.session_id,
                    principal,
                    reason,
                    session.version,
                )
            )


class _TakenOver(Exception):
    """Another connection took this client ID over."""


def _now() -> int:
    return int(time.time() * 1000)
