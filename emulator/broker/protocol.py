"""One client connection's MQTT state machine (3.1.1 and 5), with AWS IoT's rules, free of I/O.

Theory of operation
-------------------
In the manner of h11, ``MqttProtocol`` turns the bytes a client sent into what should
happen, and never does I/O itself. Its driver (``connection.py``) reads the link, calls
``receive(data, now)`` and applies the returned outputs in order:

- ``bytes``: write to this connection's link (CONNACK, PUBACK, SUBACK, stored messages, ...);
- ``InboundMessage``: publish through the broker (an accepted PUBLISH, a lifecycle event, the
  Last Will);
- ``IngestMessage``: a PUBLISH to a Basic Ingest topic (``$aws/rules/<rule>/...``): hand it
  to that rule, past the subscribers (iot-basic-ingest.md);
- ``CloseLink``: close the link of the connection this one took the client ID from;
- ``StartExpiry``: a persistent session went offline; start its expiry timer;
- ``StartResend``: the session has stored messages to send at the resend rate; start (or
  restart) the timer that calls ``BrokerState.resend_next``.

The state is explicit (``ConnState``) and ``ACCEPTED`` lists the packets a client may send in
each state; any other packet ends the connection with ``CLIENT_ERROR``. Once the state is
``CLOSING`` the driver stops reading and calls ``end(now)``, whose outputs publish the Last
Will (every end except a DISCONNECT packet, AWS and MQTT alike), report the ``disconnected``
lifecycle event and detach the session. ``close_reason`` is the AWS ``disconnectReason``.

Session state (the session table, subscriptions, retained messages, deliveries) belongs to
``BrokerState``; the protocol asks it to attach, subscribe, and so on. Published messages
are outputs, applied by the driver right after ``receive`` returns. So that a SUBSCRIBE or
UNSUBSCRIBE sees the effect of the messages published before it in the same read (a
retained message, a delivery to the old subscriptions), ``receive`` stops in front of it
when outputs are waiting, and ``pending`` tells the driver to call ``receive(b"", now)``
again after applying them.

AWS IoT's per-connection quotas (``quotas.py``, from the broker's ``BrokerQuotas``) are
enforced here with the time passed in: PUBLISHes over ``publish_rate`` are dropped (a token
bucket refilled once per read, two integer operations per PUBLISH); bytes over
``throughput_bytes`` per second set ``resume_at``, when the driver may read again (nothing
is dropped, reading pauses); more than ``max_filters_per_subscribe`` filters in one
SUBSCRIBE close the connection; subscriptions past ``max_subscriptions`` get SUBACK 0x80;
the keep-alive is clamped; a CONNECT within ``connect_interval_ms`` of the client ID's
previous one is refused. Each limit hit is logged once per interval with a count.

Client-controlled strings (client ID, topics) are logged with ``repr`` so that a newline in
them cannot forge a log line.

MQTT 5 (protocol level 5 in the CONNECT) runs through the same states and methods: the
packets are decoded by ``codec5.py`` instead, the acknowledgements carry reason codes,
and a connection the broker ends is told why in a DISCONNECT (``_goodbye``) with the
reason code AWS uses (aws-iot-current.md, section 1). ``self.v5`` says which version
the connection speaks; the MQTT 3.1.1 path tests it once per PUBLISH, nothing more.

Time comes in as ``now`` (ms since the epoch); identifiers from ``new_uuid``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from emulator.broker import codec5, lifecycle
from emulator.broker import properties as props5
from emulator.broker.amqtt_codec import decode_connect, decode_subscribe, decode_unsubscribe
from emulator.broker.auth import ClientIdentity
from emulator.broker.codec import (
    CONNECT,
    DISCONNECT,
    MALFORMED,
    PACKET_NAMES,
    PINGREQ,
    PINGRESP_BYTES,
    PROTOCOL_ERROR,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    REQUIRED_FLAGS,
    SUBACK_FAILURE,
    SUBSCRIBE,
    UNSUBSCRIBE,
    Frame,
    FrameReader,
    ProtocolError,
    Publish,
    decode_packet_id,
    decode_publish,
    encode_connack,
    encode_puback,
    encode_suback,
    encode_unsuback,
)
from emulator.broker.lifecycle import DisconnectReason
from emulator.broker.link import Link, Outlet
from emulator.broker.packets import NO_LOCAL, QOS_MASK, RETAIN_HANDLING, Connect, Subscribe, Will
from emulator.broker.quotas import COST, LimitLog, TokenBucket
from emulator.broker.sessions import Session
from emulator.broker.state import BrokerState
from emulator.limits import MAX_CLIENT_ID, MAX_PAYLOAD, PublishCheck, Refusal
from emulator.logformat import escape_controls
from emulator.messages import InboundMessage, IngestMessage, PublishProperties
from emulator.topics import BasicIngest, basic_ingest, shared_subscription, validate_subscription

log = logging.getLogger(__name__)
_new = object.__new__

# The largest packet we read: a 128 KB payload plus topic, packet id and length fields.
MAX_PACKET = MAX_PAYLOAD + 2 + 65535 + 2
# MQTT 5: AWS's "MQTT5 packet size" quota (variable header and payload), in the CONNACK.
MAX_PACKET_5 = 146 * 1024
CONNECT_TIMEOUT_MS = 10_000  # to receive CONNECT after the socket opens

# CONNACK return codes. AWS documents that it answers 7 (not MQTT's 5) when the client is
# not authorized to connect (reference/aws-iot/mqtt.md, differences from MQTT 3.1.1).
CONNACK_ACCEPTED = 0
CONNACK_BAD_PROTOCOL = 1
CONNACK_ID_REJECTED = 2
CONNACK_NOT_AUTHORIZED_AWS = 7

# MQTT 5: AWS's limits on a PUBLISH's properties (aws-iot-current.md, section 3), the
# smallest Maximum Packet Size a client may ask for, and the reason code a connection the
# broker ends is told, by the lifecycle reason it records.
MAX_USER_PROPERTIES = 8 * 1024
MAX_CONTENT_TYPE = 256
MAX_CORRELATION_DATA = 8 * 1024
MIN_CLIENT_PACKET = 512
_DISCONNECT_CODES = {
    DisconnectReason.CLIENT_ERROR: PROTOCOL_ERROR,
    DisconnectReason.FORBIDDEN_ACCESS: codec5.NOT_AUTHORIZED,
    DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT: codec5.KEEP_ALIVE_TIMEOUT,
    DisconnectReason.THROTTLED: codec5.QUOTA_EXCEEDED,
    DisconnectReason.DUPLICATE_CLIENTID: codec5.SESSION_TAKEN_OVER,
}


class ConnState(Enum):
    AWAITING_CONNECT = "awaiting CONNECT"
    CONNECTED = "connected"
    CLOSING = "closing"  # the end is decided; the driver calls end()
    CLOSED = "closed"


# The packets a client may send in each state; anything else ends the connection.
ACCEPTED: dict[ConnState, frozenset[int]] = {
    ConnState.AWAITING_CONNECT: frozenset({CONNECT}),
    ConnState.CONNECTED: frozenset({PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT}),
    ConnState.CLOSING: frozenset(),
    ConnState.CLOSED: frozenset(),
}

# Why a packet is refused once connected, where "unexpected" would not say enough.
_REFUSED_WHEN_CONNECTED = {
    CONNECT: "second CONNECT on the same connection",
    PUBREC: "PUBREC: QoS 2 is not supported by AWS IoT",
    PUBREL: "PUBREL: QoS 2 is not supported by AWS IoT",
    PUBCOMP: "PUBCOMP: QoS 2 is not supported by AWS IoT",
}

_REFUSAL_REASONS = {
    Refusal.INVALID_TOPIC: DisconnectReason.CLIENT_ERROR,
    Refusal.TOO_LARGE: DisconnectReason.CLIENT_ERROR,
    Refusal.RESERVED_TOPIC: DisconnectReason.FORBIDDEN_ACCESS,
}
_REFUSAL_CODES = {
    Refusal.INVALID_TOPIC: 0x90,  # Topic Name invalid
    Refusal.TOO_LARGE: 0x95,  # Packet too large
    Refusal.RESERVED_TOPIC: 0x87,  # Not authorized
}


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close another connection's link: this one took its client ID over. ``last``: what
    to write to it first (MQTT 5: DISCONNECT "Session taken over")."""

    link: Outlet
    last: bytes = b""


@dataclass(frozen=True, slots=True)
class StartExpiry:
    """A persistent session went offline: expire it after the configured time unless the
    client is back (``BrokerState.expire`` checks ``absences``)."""

    client_id: str
    absences: int
    after: float | None = None  # seconds; None: the configured session expiry


@dataclass(frozen=True, slots=True)
class PublishLater:
    """Publish ``message`` after ``delay`` seconds unless ``client_id`` connects again
    first: an MQTT 5 Last Will with a Will Delay Interval."""

    client_id: str
    message: InboundMessage
    delay: float


@dataclass(frozen=True, slots=True)
class StartResend:
    """Send the session's stored messages at the resend rate (``BrokerState.resend_next``),
    for as long as ``owner`` has the session."""

    session: Session
    owner: MqttProtocol


Output = (
    bytes | InboundMessage | IngestMessage | CloseLink | StartExpiry | StartResend | PublishLater
)


class MqttProtocol:
    """One client connection (see the module docstring)."""

    def __init__(
        self,
        broker: BrokerState,
        check: PublishCheck,
        link: Link,
        new_uuid: Callable[[], str],
        now: int,
        keepalive_factor: float = 1.5,
    ) -> None:
        self.state = ConnState.AWAITING_CONNECT
        self.close_reason: DisconnectReason | None = None
        # When (ms, the ``now`` clock) the driver gives up waiting for bytes; None: never.
        # CONNECT must arrive within CONNECT_TIMEOUT_MS of the start, however it trickles
        # in; once connected, every read restarts the keep-alive wait.
        self.deadline: int | None = now + CONNECT_TIMEOUT_MS
        self.session: Session | None = None
        self.identity: ClientIdentity | None = None
        self.keep_alive = 0
        self.will: Will | None = None
        self._broker = broker
        self._check = check
        quotas = broker.quotas
        self._quotas = quotas
        self._publishes = TokenBucket(quotas.publish_rate, now)
        self._bytes = TokenBucket(quotas.throughput_bytes, now)
        self._throttled = LimitLog()  # PUBLISH over publish_rate
        self._slowed = LimitLog()  # reads over throughput_bytes
        self._over_subscribed = LimitLog()  # filters over max_subscriptions
        # When (ms) the driver may read again: over the throughput quota; 0: at once.
        self.resume_at = 0
        self._link = link
        self._new_uuid = new_uuid
        self._keepalive_factor = keepalive_factor
        self._keepalive_ms = 0  # keepalive_factor x the client's keep-alive; 0: no limit
        self._frames = FrameReader(MAX_PACKET)
        self._pending: list[Frame] = []
        self._taken_over = False
        self._client_id = ""
        self._principal = ""
        self.v5 = False  # MQTT 5 (CONNECT protocol level 5)
        self._aliases: dict[int, str] = {}  # MQTT 5 topic aliases the client set
        self._goodbye: bytes | None = None  # MQTT 5 DISCONNECT to send before closing
        self._props_cache = codec5.PropertyCache()
        # MQTT 5 Request Problem Information: 0 forbids Reason Strings on acknowledgements
        self._problem_info = True
        # sourceip() of this client's messages: the TCP or WebSocket peer's address
        self._source_ip: str | None = link.peer_ip

    @property
    def name(self) -> str:
        link = self._link
        client = repr(self._client_id) if self._client_id else "'?'"
        return f"client {client} ({link.transport_name} {link.peer_ip}:{link.peer_port})"

    @property
    def open(self) -> bool:
        """Still reading: waiting for CONNECT or connected."""
        state = self.state
        return state is ConnState.CONNECTED or state is ConnState.AWAITING_CONNECT

    @property
    def pending(self) -> bool:
        """Frames are left to handle after the outputs of ``receive`` are applied."""
        return bool(self._pending) and self.open

    # -- events from the driver ----------------------------------------------------------
    def receive(self, data: bytes, now: int) -> list[Output]:
        """Handle the bytes the client sent; the outputs to apply, in order."""
        out: list[Output] = []
        if not self.open:
            return out  # e.g. taken over: what the old connection still sends is ignored
        if data:
            # AWS: 512 KiB/s per connection; what is over delays the next read.
            delay = self._bytes.charge(now, len(data))
            if delay:
                self.resume_at = now + delay
                slowed = self._slowed.hit(now)
                if slowed:
                    log.warning(
                        "%s is over throughput_kib (%d KiB/s); reading paused %d times",
                        self.name,
                        self._quotas.throughput_bytes // 1024,
                        slowed,
                    )
            else:
                self.resume_at = 0
        publishes = self._publishes
        publishes.refill(now)
        tokens = publishes.tokens  # a local while the frames are handled, stored back after
        try:
            frames = self._frames.feed(data) if data else []
            if self._pending:
                frames = self._pending + frames
                self._pending = []
            connected = ConnState.CONNECTED
            for frame in frames:
                kind = frame[0]
                if kind == PUBLISH and self.state is connected:
                    # AWS: 100 publishes per second per connection; the excess is dropped.
                    if tokens >= COST:
                        tokens -= COST
                        if not self._publish(frame, now, out):
                            break
                    else:
                        self._publish_throttled(frame, now, out)
                    continue
                if (kind == SUBSCRIBE or kind == UNSUBSCRIBE) and out:
                    # Let the driver publish what came before (module docstring).
                    at = next(i for i, f in enumerate(frames) if f is frame)
                    self._pending = frames[at:]
                    break
                if not self._control(frame, now, out):
                    break
            else:
                error = self._frames.error
                if error is not None and self.open:
                    self._frames.error = None
                    raise error
        except ProtocolError as exc:
            self._protocol_error(str(exc), exc.code)
        publishes.tokens = tokens
        if self._goodbye is not None:
            out.append(self._goodbye)
            self._goodbye = None
        if self.state is ConnState.CONNECTED:
            keepalive_ms = self._keepalive_ms
            self.deadline = now + keepalive_ms if keepalive_ms else None
        return out

    def timed_out(self) -> list[Output]:
        """Nothing arrived by ``deadline``; what to write before the link is closed."""
        if self.state is ConnState.AWAITING_CONNECT:
            self._refuse("no CONNECT in time")
        elif self.state is ConnState.CONNECTED:
            timeout = self._keepalive_ms / 1000
            self._close(
                DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT,
                f"no packet within {timeout:g} s "
                f"({self._keepalive_factor:g} x keep-alive {self.keep_alive} s)",
            )
        goodbye, self._goodbye = self._goodbye, None
        return [goodbye] if goodbye is not None else []

    def connection_lost(self) -> None:
        """The client closed the stream, or the transport failed."""
        if self.open:
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.CONNECTION_LOST

    def taken_over(self) -> None:
        """A newer connection with the same client ID has the session now."""
        self._taken_over = True
        if self.open:
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.DUPLICATE_CLIENTID

    def overflowed(self, buffered: int) -> None:
        """The broker stopped writing to this client: it did not read what it was sent
        (``client_buffer_bytes``; the broker logged it and aborts the link)."""
        if self.open:
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.THROTTLED

    def end(self, now: int) -> list[Output]:
        """The connection is over (the driver has closed the link): the Last Will, the
        ``disconnected`` event, the session detached or dropped."""
        out: list[Output] = []
        if self.state is ConnState.CLOSED:
            return out
        self.state = ConnState.CLOSED
        self.deadline = None
        reason = self.close_reason or DisconnectReason.CONNECTION_LOST
        self.close_reason = reason
        session = self.session
        if session is None:
            return out
        will = self.will
        if will is not None:
            self.will = None
            self._publish_will(will, session, now, out)
        if self._taken_over:
            return out  # the new connection already reported our end
        offline = self._broker.detach(session, self)
        event = lifecycle.disconnected_event(
            session.client_id, now, session.session_id, self._principal, reason, session.version
        )
        if event is not None:
            out.append(event)
        log.info("disconnected %s: %s", self.name, reason.value)
        if offline:
            out.append(StartExpiry(session.client_id, session.absences, session.expiry))
        return out

    def _publish_will(self, will: Will, session: Session, now: int, out: list[Output]) -> None:
        """The Last Will, at once or (MQTT 5) after its delay: AWS and MQTT 5 publish it
        when the Will Delay Interval or the session ends, whichever comes first, and not
        if the client connects again before."""
        ingest = basic_ingest(will.topic)
        if ingest is not None:
            log.info("publishing the Last Will of %s (%s)", self.name, self.close_reason)
            out.append(self._ingest_message(ingest, will.payload, will.qos, now))
            return
        delay: float = 0
        if will.delay and not self._taken_over and not session.clean:
            delay = min(will.delay, session.expiry or self._quotas.session_expiry)
        props = will.properties
        if will.expiry is not None:  # counted from when the will is published
            expires_at = now + round((delay + will.expiry) * 1000)
            props = (props or PublishProperties())._replace(expires_at=expires_at, wire=None)
        message = InboundMessage(
            will.topic,
            will.payload,
            will.qos,
            will.retain,
            client_id=self._client_id,
            principal=self._principal,
            timestamp_ms=now,
            source_ip=self._source_ip,
            properties=props,
        )
        if delay:
            log.info("Last Will of %s in %g s unless it is back", self.name, delay)
            out.append(PublishLater(session.client_id, message, delay))
            return
        log.info("publishing the Last Will of %s (%s)", self.name, self.close_reason)
        out.append(message)

    # -- packets -------------------------------------------------------------------------
    def _control(self, frame: Frame, now: int, out: list[Output]) -> bool:
        """Any packet but a PUBLISH while connected (``receive`` handles that one inline);
        False: stop reading."""
        kind = frame[0]
        state = self.state
        if frame.flags != REQUIRED_FLAGS.get(kind, frame.flags):
            name = PACKET_NAMES.get(kind, str(kind))
            raise ProtocolError(f"{name} with fixed-header flags {frame.flags:#x}", MALFORMED)
        if kind not in ACCEPTED[state]:
            name = PACKET_NAMES.get(kind, str(kind))
            if state is ConnState.AWAITING_CONNECT:
                self._refuse(f"first packet is {name}, not CONNECT")
            else:
                self._protocol_error(
                    _REFUSED_WHEN_CONNECTED.get(kind, f"unexpected {name} from a client")
                )
            return False
        if kind == PUBACK:
            session = self.session
            assert session is not None
            packet_id = codec5.decode_ack(frame)[0] if self.v5 else decode_packet_id(frame)
            if self._broker.acknowledged(session, packet_id, now):
                out.append(StartResend(session, self))
        elif kind == PINGREQ:
            out.append(PINGRESP_BYTES)
        elif kind == SUBSCRIBE:
            self._subscribe(frame, now, out)
        elif kind == UNSUBSCRIBE:
            self._unsubscribe(frame, now, out)
        elif kind == DISCONNECT:
            if self.v5:
                self._disconnect5(frame)
                if not self.open:
                    return False
            else:
                if frame.body:
                    raise ProtocolError("DISCONNECT with a body")  # the will is published
                self.will = None  # a clean DISCONNECT discards the Last Will
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.CLIENT_INITIATED_DISCONNECT
        elif kind == CONNECT:
            self._connect(frame, now, out)
        return self.open

    def _connect(self, frame: Frame, now: int, out: list[Output]) -> None:
        level = codec5.protocol_level(frame)
        if level == 5:
            self.v5 = True
            packet = codec5.decode_connect(frame)
        else:
            packet = decode_connect(frame)
        if packet.protocol_name != "MQTT" or packet.protocol_level not in (4, 5):
            # AWS IoT speaks MQTT 3.1.1 and 5.
            out.append(encode_connack(False, CONNACK_BAD_PROTOCOL))
            self._refuse(
                f"unsupported protocol {packet.protocol_name!r} level {packet.protocol_level}"
            )
            return
        v5 = self.v5
        client_id = packet.client_id
        clean = packet.clean_session
        assigned = False
        if not client_id:
            if not clean and not v5:
                # MQTT 3.1.1 [MQTT-3.1.3-8]: a zero-byte client ID needs a clean session.
                out.append(encode_connack(False, CONNACK_ID_REJECTED))
                self._refuse("empty client ID with a persistent session")
                return
            # MQTT 5 and AWS: "a random unused ID", returned in the CONNACK.
            client_id = "auto-" + self._new_uuid().replace("-", "")
            assigned = True
        if len(client_id.encode()) > MAX_CLIENT_ID:
            self._refuse_connect(
                out,
                CONNACK_ID_REJECTED,
                codec5.CLIENT_ID_NOT_VALID,
                f"client ID is {len(client_id.encode())} bytes, over the limit of {MAX_CLIENT_ID}",
            )
            return
        if v5 and not self._connect5_allowed(packet, out):
            return
        broker = self._broker
        link = self._link
        # The AWS IoT Device SDKs append usage metrics to the username after "?"
        # ("?SDK=PythonV2&Version=1.4.0&Platform=..."); AWS does not take them as identity.
        username = packet.username
        if username is not None and "?" in username:
            username = username.partition("?")[0] or None
        principal = link.principal or username or "anonymous"
        identity = ClientIdentity(client_id, principal, link.peer_ip, username)
        if not broker.authorize(identity, "iot:Connect", client_id).allowed:
            self._refuse_connect(
                out,
                CONNACK_NOT_AUTHORIZED_AWS,
                codec5.NOT_AUTHORIZED,
                f"not authorized to connect as {client_id!r}",
            )
            self.close_reason = DisconnectReason.AUTH_ERROR
            return
        if not broker.connect_allowed(client_id, now):
            # AWS: one CONNECT per second per client ID; the connection is refused
            # (logged once per client ID per interval by the broker's state). MQTT 5 is
            # told why.
            if v5:
                out.append(
                    codec5.encode_connack(
                        False,
                        codec5.QUOTA_EXCEEDED,
                        {props5.REASON_STRING: "over the CONNECT rate of this client ID"},
                    )
                )
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.THROTTLED
            return
        self._client_id = client_id
        self._principal = principal
        self.identity = identity
        self.keep_alive = packet.keep_alive
        will = packet.will
        if will is not None and will.qos > 1:
            will = replace(will, qos=1)  # AWS IoT has no QoS 2 (MQTT 5 was refused above)
        self.will = will
        quotas = self._quotas
        keep = None
        expiry: float | None = None
        if v5:
            # Session Expiry Interval: 0 (or absent) ends the session with the connection;
            # AWS lowers what is over its maximum and says so in the CONNACK.
            keep = packet.session_expiry > 0
            expiry = min(packet.session_expiry, quotas.session_expiry)
        taken = broker.take_over(client_id)
        session, present = broker.attach(
            client_id, clean, self, link, identity, self._new_uuid(), 5 if v5 else 4, keep
        )
        self.session = session
        session.expiry = expiry if keep else None
        self.state = ConnState.CONNECTED
        # AWS clamps the keep-alive to 30..1200 s, 0 meaning 1200 (no "never").
        keep_alive = quotas.keep_alive(self.keep_alive)
        self._keepalive_ms = round(keep_alive * self._keepalive_factor * 1000)
        if v5:
            self._frames.limit(MAX_PACKET_5)
            session.max_inflight = min(quotas.max_inflight, packet.receive_maximum)
            session.max_packet = packet.maximum_packet_size
            session.alias_max = min(packet.topic_alias_maximum, quotas.topic_alias_max)
            self._problem_info = packet.request_problem_info
            out.append(
                codec5.encode_connack(
                    present,
                    codec5.SUCCESS,
                    {
                        props5.SESSION_EXPIRY: (
                            expiry if keep and expiry != packet.session_expiry else None
                        ),
                        props5.RECEIVE_MAXIMUM: quotas.max_inflight,
                        props5.MAXIMUM_QOS: 1,
                        props5.MAXIMUM_PACKET_SIZE: MAX_PACKET_5,
                        props5.ASSIGNED_CLIENT_ID: client_id if assigned else None,
                        props5.TOPIC_ALIAS_MAXIMUM: quotas.topic_alias_max,
                        props5.SERVER_KEEP_ALIVE: (
                            keep_alive if keep_alive != packet.keep_alive else None
                        ),
                        props5.SUB_ID_AVAILABLE: 0,
                    },
                )
            )
        else:
            out.append(encode_connack(present, CONNACK_ACCEPTED))
        if taken is not None:
            # AWS: the new connection is accepted and the previous one disconnected.
            log.warning("client ID %r connected again; closing the previous connection", client_id)
            event = lifecycle.disconnected_event(
                client_id,
                now,
                taken.session_id,
                taken.principal,
                DisconnectReason.DUPLICATE_CLIENTID,
                taken.version,
            )
            if event is not None:
                out.append(event)
            last = b""
            if getattr(taken.owner, "v5", False):
                last = codec5.encode_disconnect(codec5.SESSION_TAKEN_OVER)
            out.append(CloseLink(taken.link, last))
            taken.owner.taken_over()
        log.info(
            "connected %s MQTT %s clean=%s keepalive=%ss (applied %ss)",
            self.name,
            "5" if v5 else "3.1.1",
            clean,
            self.keep_alive,
            keep_alive,
        )
        event = lifecycle.connected_event(
            client_id, now, session.session_id, principal, link.peer_ip, session.version
        )
        if event is not None:
            out.append(event)
        if session.redeliver or session.stored:
            out.append(StartResend(session, self))

    def _connect5_allowed(self, packet: Connect, out: list[Output]) -> bool:
        """What AWS refuses in an MQTT 5 CONNECT, with the reason codes it documents."""
        will = packet.will
        if will is not None and will.qos > 1:
            self._refuse_connect(
                out, 0, codec5.QOS_NOT_SUPPORTED, "Will QoS 2: AWS IoT has no QoS 2"
            )
            return False
        if packet.auth_method is not None:
            self._refuse_connect(
                out,
                0,
                codec5.BAD_AUTHENTICATION_METHOD,
                "enhanced authentication (AUTH) is not supported by AWS IoT",
            )
            return False
        size = packet.maximum_packet_size
        if size is not None and size < MIN_CLIENT_PACKET:
            self._refuse_connect(
                out,
                0,
                codec5.UNSPECIFIED_ERROR,
                f"Maximum Packet Size {size} is under AWS's minimum of {MIN_CLIENT_PACKET}",
            )
            return False
        return True

    def _refuse_connect(self, out: list[Output], code3: int, code5: int, detail: str) -> None:
        """A refused CONNECT: the CONNACK with the version's code (MQTT 5: and the reason)."""
        if self.v5:
            out.append(codec5.encode_connack(False, code5, {props5.REASON_STRING: detail}))
        else:
            out.append(encode_connack(False, code3))
        self._refuse(detail)

    def _publish(self, frame: Frame, now: int, out: list[Output]) -> bool:
        """A client's PUBLISH; False: it ended the connection."""
        properties = None
        if self.v5:
            publish, props = codec5.decode_publish(frame, self._props_cache)
            topic, payload, qos, retain, _dup, packet_id = publish
            if props:
                topic, properties = self._properties5(publish, props, now)
                if not self.open:
                    return False
            elif not topic:
                raise ProtocolError("PUBLISH without a topic or a topic alias", PROTOCOL_ERROR)
        else:
            topic, payload, qos, retain, _dup, packet_id = decode_publish(frame)
        if qos:
            if qos == 2 and self.v5:
                # MQTT 5: a QoS over the CONNACK's Maximum QoS (1) ends the connection.
                self._close(
                    DisconnectReason.CLIENT_ERROR,
                    f"QoS 2 PUBLISH on {topic!r}: AWS IoT supports QoS 0 and 1",
                    codec5.QOS_NOT_SUPPORTED,
                )
                return False
            if qos == 2:
                # AWS: "When QoS level 2 is requested, the message broker doesn't send a
                # PUBACK" (and does not forward the message).
                log.warning(
                    "ignored a QoS 2 PUBLISH on %r from %s: AWS IoT supports QoS 0 and 1",
                    topic,
                    self.name,
                )
                return True
            if qos == 3:
                raise ProtocolError("PUBLISH with QoS 3")
        refused = self._check.client_publish(topic, len(payload))
        if refused is not None:
            if isinstance(refused, BasicIngest):
                return self._ingest(refused, topic, payload, qos, packet_id, now, out, properties)
            where = f" on {topic!r}" if refused.reason is Refusal.TOO_LARGE else ""
            self._close(
                _REFUSAL_REASONS[refused.reason],
                f"PUBLISH{where} refused: {refused.message!r}",
                _REFUSAL_CODES[refused.reason],
            )
            return False
        broker = self._broker
        if broker.authorizer is not None:
            identity = self.identity
            assert identity is not None
            if not broker.authorize(identity, "iot:Publish", topic).allowed or (
                retain and not broker.authorize(identity, "iot:RetainPublish", topic).allowed
            ):
                return self._forbidden(topic, packet_id, out)
        if packet_id is not None:
            out.append(encode_puback(packet_id))
        # Every field set by name on a bare instance, as actions/republish.py does: calling
        # the dataclass costs its ``__init__`` frame once per message. A new
        # ``InboundMessage`` field must be set here too (test_connection_protocol.py
        # compares with one built by ``__init__``).
        message = _new(InboundMessage)
        message.topic = topic
        message.payload = payload
        message.qos = qos
        message.retain = retain
        message.client_id = self._client_id
        message.principal = self._principal
        message.timestamp_ms = now
        message.hops = 0
        message.trace_id = None
        message.origin = None
        message.source_ip = self._source_ip
        message.properties = properties
        out.append(message)
        return True

    def _properties5(
        self, publish: Publish, props: props5.Properties, now: int
    ) -> tuple[str, PublishProperties | None]:
        """An MQTT 5 PUBLISH's topic (through its topic alias) and message properties,
        within AWS's limits; a breach ends the connection (``open`` is then False)."""
        topic = publish.topic
        alias = props.get(props5.TOPIC_ALIAS)
        if alias is not None:
            if not 0 < alias <= self._quotas.topic_alias_max:
                self._close(
                    DisconnectReason.CLIENT_ERROR,
                    f"topic alias {alias} is over the maximum of {self._quotas.topic_alias_max}",
                    codec5.TOPIC_ALIAS_INVALID,
                )
                return topic, None
            if topic:
                self._aliases[alias] = topic
            else:
                known = self._aliases.get(alias)
                if known is None:
                    raise ProtocolError(f"topic alias {alias} was never set", PROTOCOL_ERROR)
                topic = known
        elif not topic:
            raise ProtocolError("PUBLISH without a topic or a topic alias", PROTOCOL_ERROR)
        if props5.SUBSCRIPTION_ID in props:
            raise ProtocolError("a client's PUBLISH has a Subscription Identifier", PROTOCOL_ERROR)
        cache = self._props_cache
        if cache.made and cache.props is props:
            return topic, cache.message  # its limits were checked when it was made
        properties = codec5.message_properties(props, now)
        if cache.props is props and props5.MESSAGE_EXPIRY not in props:
            cache.message = properties
            cache.made = True
        if properties is not None:
            users = sum(len(k) + len(v) for k, v in properties.user_properties)
            if (
                users > MAX_USER_PROPERTIES
                or len((properties.content_type or "").encode()) > MAX_CONTENT_TYPE
                or len(properties.correlation_data or b"") > MAX_CORRELATION_DATA
            ):
                self._close(
                    DisconnectReason.CLIENT_ERROR,
                    f"PUBLISH on {topic!r} over AWS's property limits (user properties "
                    f"{MAX_USER_PROPERTIES} B, content type {MAX_CONTENT_TYPE} B, "
                    f"correlation data {MAX_CORRELATION_DATA} B)",
                    codec5.QUOTA_EXCEEDED,
                )
        return topic, properties

    def _forbidden(self, topic: str, packet_id: int | None, out: list[Output]) -> bool:
        """A PUBLISH the policy denies: MQTT 3.1.1 has no way to say so and is disconnected;
        MQTT 5 at QoS 1 gets PUBACK 0x87 and stays connected (AWS lists 0x87 among its
        PUBACK codes); at QoS 0 it is disconnected with DISCONNECT 0x87."""
        detail = f"not authorized to publish on {topic!r}"
        if self.v5 and packet_id is not None:
            log.warning("%s: %s", self.name, detail)
            reason = detail if self._problem_info else None  # MQTT 5 [MQTT-3.1.2-29]
            out.append(codec5.encode_puback(packet_id, codec5.NOT_AUTHORIZED, reason))
            return True
        self._close(DisconnectReason.FORBIDDEN_ACCESS, detail)
        return False

    def _ingest(
        self,
        ingest: BasicIngest,
        topic: str,
        payload: bytes,
        qos: int,
        packet_id: int | None,
        now: int,
        out: list[Output],
        properties: PublishProperties | None = None,
    ) -> bool:
        """A PUBLISH to ``$aws/rules/<rule>/...``: for that rule only (iot-basic-ingest.md).
        The policy decides on the topic as published ("publish permissions on
        ``$aws/rules/*``"); QoS 1 is acknowledged once the rules engine has the message,
        whether or not the rule exists. The RETAIN flag is ignored: nothing is retained and
        no subscriber gets the message (docs/differences.md)."""
        broker = self._broker
        if broker.authorizer is not None:
            identity = self.identity
            assert identity is not None
            if not broker.authorize(identity, "iot:Publish", topic).allowed:
                return self._forbidden(topic, packet_id, out)
        if packet_id is not None:
            out.append(encode_puback(packet_id))
        out.append(self._ingest_message(ingest, payload, qos, now, properties))
        return True

    def _ingest_message(
        self,
        ingest: BasicIngest,
        payload: bytes,
        qos: int,
        now: int,
        properties: PublishProperties | None = None,
    ) -> IngestMessage:
        return IngestMessage(
            ingest.topic,
            payload,
            qos,
            False,
            self._client_id,
            self._principal,
            now,
            source_ip=self._source_ip,
            properties=properties,
            rule=ingest.rule,
        )

    def _subscribe(self, frame: Frame, now: int, out: list[Output]) -> None:
        session = self.session
        identity = self.identity
        assert session is not None and identity is not None
        v5 = self.v5
        packet: Subscribe = codec5.decode_subscribe(frame) if v5 else decode_subscribe(frame)
        if not packet.filters:
            raise ProtocolError("SUBSCRIBE without topic filters", PROTOCOL_ERROR)
        if not packet.packet_id:
            raise ProtocolError("SUBSCRIBE with packet id 0", PROTOCOL_ERROR)
        if not v5 and any(options > 2 for _, options in packet.filters):
            # MQTT 3.1.1 [MQTT-3.8.3-4]: QoS 3 or reserved bits in the requested QoS byte.
            raise ProtocolError("SUBSCRIBE requests QoS 3 or sets reserved bits", MALFORMED)
        if packet.subscription_id is not None:
            # AWS: "Subscription Identifier Available" is 0 in the CONNACK.
            self._close(
                DisconnectReason.CLIENT_ERROR,
                "SUBSCRIBE with a Subscription Identifier: AWS IoT does not support them",
                codec5.SUBSCRIPTION_IDS_NOT_SUPPORTED,
            )
            return
        quotas = self._quotas
        if len(packet.filters) > quotas.max_filters_per_subscribe:
            # AWS: at most 8 subscriptions per SUBSCRIBE; the broker does not answer a
            # bigger one, it disconnects the client (CLIENT_ERROR; docs/differences.md).
            self._close(
                DisconnectReason.CLIENT_ERROR,
                f"SUBSCRIBE with {len(packet.filters)} topic filters, over the limit of "
                f"{quotas.max_filters_per_subscribe}",
                codec5.QUOTA_EXCEEDED,
            )
            return
        if not v5 and any(qos >= 2 for _, qos in packet.filters):
            # AWS: "When QoS level 2 is requested, the message broker doesn't send a ... SUBACK".
            log.warning(
                "ignored a SUBSCRIBE with QoS 2 from %s: AWS IoT supports QoS 0 and 1", self.name
            )
            return
        broker = self._broker
        codes: list[int] = []
        granted: list[tuple[str, int]] = []
        retained: list[tuple[str, int]] = []
        over_limit = 0
        refused = SUBACK_FAILURE
        for topic_filter, options in packet.filters:
            problem = validate_subscription(topic_filter)
            if problem:
                log.warning("SUBSCRIBE to %r refused for %s: %s", topic_filter, self.name, problem)
                codes.append(codec5.TOPIC_FILTER_INVALID if v5 else refused)
                continue
            shared = shared_subscription(topic_filter) is not None
            if shared and options & NO_LOCAL:
                # MQTT 5 [MQTT-3.8.3-4]: No Local on a shared subscription.
                raise ProtocolError("No Local on a shared subscription", PROTOCOL_ERROR)
            if not broker.authorize(identity, "iot:Subscribe", topic_filter).allowed:
                codes.append(codec5.NOT_AUTHORIZED if v5 else refused)
                continue
            existed = topic_filter in session.subscriptions
            if not existed and len(session.subscriptions) >= quotas.max_subscriptions:
                # AWS: 50 subscriptions per connection; the extra filters get SUBACK 0x80
                # (MQTT 5: 0x97 Quota exceeded).
                over_limit += 1
                codes.append(codec5.QUOTA_EXCEEDED if v5 else refused)
                continue
            if shared and not existed and broker.group_full(topic_filter):
                # AWS: at most 100 subscriptions per shared subscription group.
                log.warning(
                    "SUBSCRIBE to %r refused for %s: the group has %d members already",
                    topic_filter,
                    self.name,
                    quotas.max_group_members,
                )
                codes.append(codec5.QUOTA_EXCEEDED if v5 else refused)
                continue
            if options & QOS_MASK > 1:
                options = options & ~QOS_MASK | 1  # MQTT 5: QoS 2 granted as 1 (Maximum QoS)
            qos = options & QOS_MASK
            broker.subscribe(session, topic_filter, options)
            codes.append(qos)
            granted.append((topic_filter, qos))
            # Retain Handling: 0 send the retained message, 1 only for a new
            # subscription, 2 never; a shared subscription gets none (AWS).
            handling = (options & RETAIN_HANDLING) >> 4
            if not shared and (handling == 0 or (handling == 1 and not existed)):
                retained.append((topic_filter, qos))
        if over_limit:
            refused_count = self._over_subscribed.hit(now, over_limit)
            if refused_count:
                log.warning(
                    "%s is over max_subscriptions (%d); %d filters refused",
                    self.name,
                    quotas.max_subscriptions,
                    refused_count,
                )
        out.append(
            codec5.encode_suback(packet.packet_id, codes)
            if v5
            else encode_suback(packet.packet_id, codes)
        )
        if granted:
            self._subscription_event("subscribed", [f for f, _ in granted], now, out)
        for topic_filter, qos in retained:
            message = broker.retained_for(session, topic_filter, qos, now)
            if message is not None:
                out.append(message)

    def _unsubscribe(self, frame: Frame, now: int, out: list[Output]) -> None:
        session = self.session
        assert session is not None
        packet = codec5.decode_unsubscribe(frame) if self.v5 else decode_unsubscribe(frame)
        if not packet.filters or not packet.packet_id:
            raise ProtocolError("UNSUBSCRIBE without topic filters or with packet id 0")
        codes = []
        for topic_filter in packet.filters:
            existed = self._broker.unsubscribe(session, topic_filter)
            codes.append(codec5.SUCCESS if existed else codec5.NO_SUBSCRIPTION_EXISTED)
        if self.v5:
            out.append(codec5.encode_unsuback(packet.packet_id, codes))
        else:
            out.append(encode_unsuback(packet.packet_id))
        if packet.filters:
            self._subscription_event("unsubscribed", packet.filters, now, out)

    def _disconnect5(self, frame: Frame) -> None:
        """An MQTT 5 DISCONNECT: reason 0x04 keeps the Last Will; a Session Expiry Interval
        changes the session's (AWS: one that was 0 may not become more, a protocol error;
        one set to 0 ends the session with the connection)."""
        reason, props = codec5.decode_disconnect(frame)
        if reason != codec5.DISCONNECT_WITH_WILL:
            self.will = None
        expiry = props.get(props5.SESSION_EXPIRY)
        session = self.session
        if expiry is None or session is None:
            return
        if session.clean and expiry > 0:
            raise ProtocolError(
                "DISCONNECT sets a Session Expiry Interval on a session that had 0",
                PROTOCOL_ERROR,
            )
        if expiry == 0:
            session.clean = True
        else:
            session.expiry = min(expiry, self._quotas.session_expiry)

    def _publish_throttled(self, frame: Frame, now: int, out: list[Output]) -> None:
        if self.v5 and frame.flags & 0x06:
            # MQTT 5 at QoS 1: AWS answers PUBACK 0x97 (Quota exceeded).
            packet_id = decode_packet_id(
                Frame(frame.type, frame.flags, frame.body[2 + int.from_bytes(frame.body[:2]) :])
            )
            out.append(codec5.encode_puback(packet_id, codec5.QUOTA_EXCEEDED))
        dropped = self._throttled.hit(now)
        if dropped:
            log.warning(
                "%s is over publish_rate (%d/s); %d PUBLISH dropped",
                self.name,
                self._quotas.publish_rate,
                dropped,
            )

    # -- the end ---------------------------------------------------------------------------
    def _refuse(self, detail: str) -> None:
        """End a connection that never got as far as CONNACK: no session, no events."""
        link = self._link
        log.warning(
            "refused connection from %s:%s: %s",
            link.peer_ip,
            link.peer_port,
            escape_controls(detail),
        )
        self.state = ConnState.CLOSING
        self.close_reason = DisconnectReason.CLIENT_ERROR

    def _protocol_error(self, detail: str, code: int = PROTOCOL_ERROR) -> None:
        if self.state is ConnState.AWAITING_CONNECT:
            if self.v5:
                # A malformed MQTT 5 CONNECT is answered with a CONNACK giving the reason.
                self._goodbye = codec5.encode_connack(
                    False, code, {props5.REASON_STRING: detail[:200]}
                )
            self._refuse(detail)
        elif self.state is ConnState.CONNECTED:
            log.warning("closing %s: protocol error: %s", self.name, escape_controls(detail))
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.CLIENT_ERROR
            if self.v5:
                self._goodbye = codec5.encode_disconnect(code, detail[:200])

    def _close(self, reason: DisconnectReason, detail: str, code: int | None = None) -> None:
        """End the connection; an MQTT 5 client is told why in a DISCONNECT with ``code``
        (by default the one AWS uses for ``reason``)."""
        log.warning("closing %s: %s", self.name, escape_controls(detail))
        self.state = ConnState.CLOSING
        self.close_reason = reason
        if self.v5:
            if code is None:
                code = _DISCONNECT_CODES.get(reason, codec5.UNSPECIFIED_ERROR)
            self._goodbye = codec5.encode_disconnect(code, detail[:200])

    def _subscription_event(
        self, kind: str, topics: list[str], now: int, out: list[Output]
    ) -> None:
        session = self.session
        assert session is not None
        event = lifecycle.subscription_event(
            kind, session.client_id, now, session.session_id, self._principal, topics
        )
        if event is not None:
            out.append(event)
