"""One client connection's MQTT 3.1.1 state machine, with AWS IoT's rules, free of I/O.

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

Time comes in as ``now`` (ms since the epoch); identifiers from ``new_uuid``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from emulator.broker import lifecycle
from emulator.broker.amqtt_codec import Will, decode_connect, decode_subscribe, decode_unsubscribe
from emulator.broker.auth import ClientIdentity
from emulator.broker.codec import (
    CONNECT,
    DISCONNECT,
    PACKET_NAMES,
    PINGREQ,
    PINGRESP_BYTES,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK_FAILURE,
    SUBSCRIBE,
    UNSUBSCRIBE,
    Frame,
    FrameReader,
    ProtocolError,
    decode_packet_id,
    decode_publish,
    encode_connack,
    encode_puback,
    encode_suback,
    encode_unsuback,
)
from emulator.broker.lifecycle import DisconnectReason
from emulator.broker.link import Link, Outlet
from emulator.broker.quotas import COST, LimitLog, TokenBucket
from emulator.broker.sessions import Session
from emulator.broker.state import BrokerState
from emulator.limits import MAX_CLIENT_ID, MAX_PAYLOAD, PublishCheck, Refusal
from emulator.logformat import escape_controls
from emulator.messages import InboundMessage, IngestMessage
from emulator.topics import BasicIngest, basic_ingest, validate_subscription

log = logging.getLogger(__name__)
_new = object.__new__

# The largest packet we read: a 128 KB payload plus topic, packet id and length fields.
MAX_PACKET = MAX_PAYLOAD + 2 + 65535 + 2
CONNECT_TIMEOUT_MS = 10_000  # to receive CONNECT after the socket opens

# CONNACK return codes. AWS documents that it answers 7 (not MQTT's 5) when the client is
# not authorized to connect (reference/aws-iot/mqtt.md, differences from MQTT 3.1.1).
CONNACK_ACCEPTED = 0
CONNACK_BAD_PROTOCOL = 1
CONNACK_ID_REJECTED = 2
CONNACK_NOT_AUTHORIZED_AWS = 7


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


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close another connection's link: this one took its client ID over."""

    link: Outlet


@dataclass(frozen=True, slots=True)
class StartExpiry:
    """A persistent session went offline: expire it after the configured time unless the
    client is back (``BrokerState.expire`` checks ``absences``)."""

    client_id: str
    absences: int


@dataclass(frozen=True, slots=True)
class StartResend:
    """Send the session's stored messages at the resend rate (``BrokerState.resend_next``),
    for as long as ``owner`` has the session."""

    session: Session
    owner: MqttProtocol


Output = bytes | InboundMessage | IngestMessage | CloseLink | StartExpiry | StartResend


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
                        self._publish_throttled(now)
                    continue
                if (kind == SUBSCRIBE or kind == UNSUBSCRIBE) and out:
                    # Let the driver publish what came before (module docstring).
                    at = next(i for i, f in enumerate(frames) if f is frame)
                    self._pending = frames[at:]
                    break
                if not self._control(frame, now, out):
                    break
        except ProtocolError as exc:
            self._protocol_error(str(exc))
        publishes.tokens = tokens
        if self.state is ConnState.CONNECTED:
            keepalive_ms = self._keepalive_ms
            self.deadline = now + keepalive_ms if keepalive_ms else None
        return out

    def timed_out(self) -> None:
        """Nothing arrived by ``deadline``."""
        if self.state is ConnState.AWAITING_CONNECT:
            self._refuse("no CONNECT in time")
        elif self.state is ConnState.CONNECTED:
            timeout = self._keepalive_ms / 1000
            self._close(
                DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT,
                f"no packet within {timeout:g} s "
                f"({self._keepalive_factor:g} x keep-alive {self.keep_alive} s)",
            )

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
            log.info("publishing the Last Will of %s (%s)", self.name, reason.value)
            self.will = None
            ingest = basic_ingest(will.topic)
            if ingest is not None:
                out.append(self._ingest_message(ingest, will.payload, will.qos, now))
            else:
                out.append(
                    InboundMessage(
                        will.topic,
                        will.payload,
                        will.qos,
                        will.retain,
                        client_id=self._client_id,
                        principal=self._principal,
                        timestamp_ms=now,
                        source_ip=self._source_ip,
                    )
                )
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
            out.append(StartExpiry(session.client_id, session.absences))
        return out

    # -- packets -------------------------------------------------------------------------
    def _control(self, frame: Frame, now: int, out: list[Output]) -> bool:
        """Any packet but a PUBLISH while connected (``receive`` handles that one inline);
        False: stop reading."""
        kind = frame[0]
        state = self.state
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
            if self._broker.acknowledged(session, decode_packet_id(frame)):
                out.append(StartResend(session, self))
        elif kind == PINGREQ:
            out.append(PINGRESP_BYTES)
        elif kind == SUBSCRIBE:
            self._subscribe(frame, now, out)
        elif kind == UNSUBSCRIBE:
            self._unsubscribe(frame, now, out)
        elif kind == DISCONNECT:
            self.will = None  # a clean DISCONNECT discards the Last Will
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.CLIENT_INITIATED_DISCONNECT
        elif kind == CONNECT:
            self._connect(frame, now, out)
        return self.open

    def _connect(self, frame: Frame, now: int, out: list[Output]) -> None:
        packet = decode_connect(frame)
        if packet.protocol_name != "MQTT" or packet.protocol_level != 4:
            # AWS IoT speaks MQTT 3.1.1 (and 5, which this emulator does not).
            out.append(encode_connack(False, CONNACK_BAD_PROTOCOL))
            self._refuse(
                f"unsupported protocol {packet.protocol_name!r} level {packet.protocol_level}"
            )
            return
        client_id = packet.client_id
        clean = packet.clean_session
        if not client_id:
            if not clean:
                # MQTT 3.1.1 [MQTT-3.1.3-8]: a zero-byte client ID needs a clean session.
                out.append(encode_connack(False, CONNACK_ID_REJECTED))
                self._refuse("empty client ID with a persistent session")
                return
            client_id = "auto-" + self._new_uuid().replace("-", "")
        if len(client_id.encode()) > MAX_CLIENT_ID:
            out.append(encode_connack(False, CONNACK_ID_REJECTED))
            self._refuse(
                f"client ID is {len(client_id.encode())} bytes, over the limit of {MAX_CLIENT_ID}"
            )
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
            out.append(encode_connack(False, CONNACK_NOT_AUTHORIZED_AWS))
            self._refuse(f"not authorized to connect as {client_id!r}")
            self.close_reason = DisconnectReason.AUTH_ERROR
            return
        if not broker.connect_allowed(client_id, now):
            # AWS: one CONNECT per second per client ID; the connection is refused
            # (logged once per client ID per interval by the broker's state).
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.THROTTLED
            return
        self._client_id = client_id
        self._principal = principal
        self.identity = identity
        self.keep_alive = packet.keep_alive
        will = packet.will
        if will is not None and will.qos > 1:
            will = replace(will, qos=1)  # AWS IoT has no QoS 2
        self.will = will
        taken = broker.take_over(client_id)
        session, present = broker.attach(client_id, clean, self, link, identity, self._new_uuid())
        self.session = session
        self.state = ConnState.CONNECTED
        # AWS clamps the keep-alive to 30..1200 s, 0 meaning 1200 (no "never").
        keep_alive = self._quotas.keep_alive(self.keep_alive)
        self._keepalive_ms = round(keep_alive * self._keepalive_factor * 1000)
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
            out.append(CloseLink(taken.link))
            taken.owner.taken_over()
        log.info(
            "connected %s clean=%s keepalive=%ss (applied %ss)",
            self.name,
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

    def _publish(self, frame: Frame, now: int, out: list[Output]) -> bool:
        """A client's PUBLISH; False: it ended the connection."""
        topic, payload, qos, retain, _dup, packet_id = decode_publish(frame)
        if qos:
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
                return self._ingest(refused, topic, payload, qos, packet_id, now, out)
            where = f" on {topic!r}" if refused.reason is Refusal.TOO_LARGE else ""
            self._close(
                _REFUSAL_REASONS[refused.reason], f"PUBLISH{where} refused: {refused.message!r}"
            )
            return False
        broker = self._broker
        if broker.authorizer is not None:
            identity = self.identity
            assert identity is not None
            if not broker.authorize(identity, "iot:Publish", topic).allowed or (
                retain and not broker.authorize(identity, "iot:RetainPublish", topic).allowed
            ):
                self._close(
                    DisconnectReason.FORBIDDEN_ACCESS, f"not authorized to publish on {topic!r}"
                )
                return False
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
        out.append(message)
        return True

    def _ingest(
        self,
        ingest: BasicIngest,
        topic: str,
        payload: bytes,
        qos: int,
        packet_id: int | None,
        now: int,
        out: list[Output],
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
                self._close(
                    DisconnectReason.FORBIDDEN_ACCESS, f"not authorized to publish on {topic!r}"
                )
                return False
        if packet_id is not None:
            out.append(encode_puback(packet_id))
        out.append(self._ingest_message(ingest, payload, qos, now))
        return True

    def _ingest_message(
        self, ingest: BasicIngest, payload: bytes, qos: int, now: int
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
            rule=ingest.rule,
        )

    def _subscribe(self, frame: Frame, now: int, out: list[Output]) -> None:
        session = self.session
        identity = self.identity
        assert session is not None and identity is not None
        if frame.flags != 0x02:
            raise ProtocolError("SUBSCRIBE with wrong fixed-header flags")
        packet = decode_subscribe(frame)
        if not packet.filters:
            raise ProtocolError("SUBSCRIBE without topic filters")
        quotas = self._quotas
        if len(packet.filters) > quotas.max_filters_per_subscribe:
            # AWS: at most 8 subscriptions per SUBSCRIBE; the broker does not answer a
            # bigger one, it disconnects the client (CLIENT_ERROR; docs/differences.md).
            self._close(
                DisconnectReason.CLIENT_ERROR,
                f"SUBSCRIBE with {len(packet.filters)} topic filters, over the limit of "
                f"{quotas.max_filters_per_subscribe}",
            )
            return
        if any(qos >= 2 for _, qos in packet.filters):
            # AWS: "When QoS level 2 is requested, the message broker doesn't send a ... SUBACK".
            log.warning(
                "ignored a SUBSCRIBE with QoS 2 from %s: AWS IoT supports QoS 0 and 1", self.name
            )
            return
        broker = self._broker
        codes: list[int] = []
        granted: list[tuple[str, int]] = []
        over_limit = 0
        for topic_filter, qos in packet.filters:
            problem = validate_subscription(topic_filter)
            if problem:
                log.warning("SUBSCRIBE to %r refused for %s: %s", topic_filter, self.name, problem)
                codes.append(SUBACK_FAILURE)
                continue
            if not broker.authorize(identity, "iot:Subscribe", topic_filter).allowed:
                codes.append(SUBACK_FAILURE)
                continue
            if (
                topic_filter not in session.subscriptions
                and len(session.subscriptions) >= quotas.max_subscriptions
            ):
                # AWS: 50 subscriptions per connection; the extra filters get SUBACK 0x80.
                over_limit += 1
                codes.append(SUBACK_FAILURE)
                continue
            broker.subscribe(session, topic_filter, qos)
            codes.append(qos)
            granted.append((topic_filter, qos))
        if over_limit:
            refused = self._over_subscribed.hit(now, over_limit)
            if refused:
                log.warning(
                    "%s is over max_subscriptions (%d); %d filters refused",
                    self.name,
                    quotas.max_subscriptions,
                    refused,
                )
        out.append(encode_suback(packet.packet_id, codes))
        if granted:
            self._subscription_event("subscribed", [f for f, _ in granted], now, out)
        for topic_filter, qos in granted:
            retained = broker.retained_for(session, topic_filter, qos)
            if retained is not None:
                out.append(retained)

    def _unsubscribe(self, frame: Frame, now: int, out: list[Output]) -> None:
        session = self.session
        assert session is not None
        packet = decode_unsubscribe(frame)
        for topic_filter in packet.filters:
            self._broker.unsubscribe(session, topic_filter)
        out.append(encode_unsuback(packet.packet_id))
        if packet.filters:
            self._subscription_event("unsubscribed", packet.filters, now, out)

    def _publish_throttled(self, now: int) -> None:
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

    def _protocol_error(self, detail: str) -> None:
        if self.state is ConnState.AWAITING_CONNECT:
            self._refuse(detail)
        elif self.state is ConnState.CONNECTED:
            log.warning("closing %s: protocol error: %s", self.name, escape_controls(detail))
            self.state = ConnState.CLOSING
            self.close_reason = DisconnectReason.CLIENT_ERROR

    def _close(self, reason: DisconnectReason, detail: str) -> None:
        log.warning("closing %s: %s", self.name, escape_controls(detail))
        self.state = ConnState.CLOSING
        self.close_reason = reason

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
