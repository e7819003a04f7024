"""MQTT 5 packets, decoded and encoded without I/O: the PUBLISH on the hot path and the
rare packets (CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT and the acknowledgements with
their reason codes).

Framing is shared with MQTT 3.1.1 (``codec.FrameReader``); the properties go through
``properties.py``. A packet-level error raises ``ProtocolError`` with the MQTT 5 reason
code the client is told (0x81 malformed, 0x82 protocol error).

Why our own codec and not a library: the maintained Python MQTT 5 codec (``mqtt5`` on
PyPI, Rust) is fast, but in its version 0.8.0 a PUBLISH with a topic that is not UTF-8
raises a ``PanicException`` (a ``BaseException``, past ``except Exception``) and it
accepts reserved subscription-option bits, both of which a broker facing any client must
handle; it also decodes whole packets, so every PUBLISH would be copied again behind its
fixed header. The property table here is small, and a PUBLISH without properties (most)
costs one byte more to decode than MQTT 3.1.1's.
"""

from __future__ import annotations

import struct
from typing import Any

from emulator.broker import properties as p
from emulator.broker.codec import (
    MALFORMED,
    PROTOCOL_ERROR,
    Frame,
    ProtocolError,
    Publish,
    encode_length,
)
from emulator.broker.packets import (
    QOS_MASK,
    RETAIN_HANDLING,
    Connect,
    Subscribe,
    Unsubscribe,
    Will,
)
from emulator.messages import PublishProperties

_new_tuple = tuple.__new__

# Reason codes (MQTT 5.0, 2.4) that the emulator sends, with AWS's choices
# (aws-iot-current.md section 1).
SUCCESS = 0x00
GRANTED_QOS_1 = 0x01
UNSPECIFIED_ERROR = 0x80
CLIENT_ID_NOT_VALID = 0x85
BAD_USERNAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
BAD_AUTHENTICATION_METHOD = 0x8C
PACKET_TOO_LARGE = 0x95
SERVER_SHUTTING_DOWN = 0x8B
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_ID_IN_USE = 0x91
TOPIC_ALIAS_INVALID = 0x94
QUOTA_EXCEEDED = 0x97
ADMINISTRATIVE_ACTION = 0x98
QOS_NOT_SUPPORTED = 0x9B
SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1
NO_SUBSCRIPTION_EXISTED = 0x11
DISCONNECT_WITH_WILL = 0x04


# -- PUBLISH (hot path) ------------------------------------------------------------------
class PropertyCache:
    """One connection's last PUBLISH property section, decoded, and the message properties
    made from it: a client that sends the same content type and user properties with
    every message (the usual case) has them decoded once, not per message. Only a
    section without an expiry (which depends on the time) keeps its ``message``."""

    __slots__ = ("made", "message", "props", "raw")

    def __init__(self) -> None:
        self.raw = b""
        self.props: p.Properties = p.NONE
        self.message: PublishProperties | None = None
        self.made = False  # ``message`` is made from ``props``


def decode_publish(
    frame: Frame, cache: PropertyCache | None = None
) -> tuple[Publish, p.Properties]:
    """An MQTT 5 PUBLISH: the fields MQTT 3.1.1 has, and its properties (``p.NONE``, the
    shared empty dict, when it has none; the section's bytes under ``p.WIRE``)."""
    body = frame.body
    size = len(body)
    if size < 3:
        raise ProtocolError("PUBLISH too short")
    (topic_len,) = struct.unpack_from("!H", body, 0)
    end = 2 + topic_len
    if size < end + 1:
        raise ProtocolError("PUBLISH topic truncated")
    topic = p.utf8(body[2:end], "PUBLISH topic") if topic_len else ""
    flags = frame.flags
    qos = (flags >> 1) & 0x03
    packet_id = None
    if qos:
        if size < end + 3:
            raise ProtocolError("PUBLISH packet id truncated")
        (packet_id,) = struct.unpack_from("!H", body, end)
        if not packet_id:
            raise ProtocolError("PUBLISH with packet id 0", PROTOCOL_ERROR)
        end += 2
    if body[end] == 0:  # no properties: the usual case, without a call
        props = p.NONE
        end += 1
    else:
        start = end
        length, after = p.read_varint(body, end)
        raw = body[start : after + length]
        if cache is not None and raw == cache.raw:
            props = cache.props
            end = after + length
        else:
            props, end = p.decode(body, end, p.PUBLISH_PROPERTIES, "PUBLISH")
            props[p.WIRE] = raw
            if cache is not None:
                cache.raw = raw
                cache.props = props
                cache.made = False
    publish = _new_tuple(
        Publish, (topic, body[end:], qos, flags & 1 == 1, flags & 8 == 8, packet_id)
    )
    return publish, props


def message_properties(props: p.Properties, now: int) -> PublishProperties | None:
    """The message properties a PUBLISH (or a Will) carries on to its receivers, with AWS's
    bounds applied: a Message Expiry Interval of 0 is 1, one over 604,800 s is that
    (aws-iot-current.md, section 1). None when it has none."""
    if not props:
        return None
    expiry = props.get(p.MESSAGE_EXPIRY)
    wire = props.get(p.WIRE)
    if expiry is not None or p.TOPIC_ALIAS in props:
        wire = None  # re-encoded per delivery: what is left of the expiry, no alias
    payload_format = props.get(p.PAYLOAD_FORMAT, 0)
    if payload_format > 1:
        raise ProtocolError(f"Payload Format Indicator {payload_format}", PROTOCOL_ERROR)
    content_type = props.get(p.CONTENT_TYPE)
    response_topic = props.get(p.RESPONSE_TOPIC)
    correlation = props.get(p.CORRELATION_DATA)
    users = props.get(p.USER_PROPERTY, ())
    if (
        expiry is None
        and not payload_format
        and content_type is None
        and response_topic is None
        and correlation is None
        and not users
    ):
        return None  # e.g. only a topic alias
    expires_at = None
    if expiry is not None:
        expires_at = now + 1000 * min(max(expiry, 1), MAX_MESSAGE_EXPIRY)
    return PublishProperties(
        payload_format, expires_at, content_type, response_topic, correlation, users, wire
    )


MAX_MESSAGE_EXPIRY = 604_800  # seconds (AWS: "Max message expiry interval")


def publish_properties(props: PublishProperties | None, now: int, alias: int = 0) -> bytes:
    """The property section of an outgoing PUBLISH: the message's properties with what
    is left of its expiry (whole seconds, as AWS forwards it), and the topic alias."""
    if props is None:
        if not alias:
            return b"\x00"
        return b"\x03\x23" + struct.pack("!H", alias)
    wire = props.wire
    if wire is not None and not alias:
        return wire
    expiry = None
    if props.expires_at is not None:
        expiry = max(0, (props.expires_at - now) // 1000)
    return p.encode(
        {
            p.PAYLOAD_FORMAT: props.payload_format or None,
            p.MESSAGE_EXPIRY: expiry,
            p.CONTENT_TYPE: props.content_type,
            p.RESPONSE_TOPIC: props.response_topic,
            p.CORRELATION_DATA: props.correlation_data,
            p.TOPIC_ALIAS: alias or None,
            p.USER_PROPERTY: props.user_properties or None,
        }
    )


def encode_publish(
    topic_bytes: bytes,
    payload: bytes,
    qos: int,
    retain: bool,
    packet_id: int,
    dup: bool,
    properties: bytes,
) -> bytes:
    """An MQTT 5 PUBLISH, its property section already encoded (``publish_properties``)."""
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    head = struct.pack("!H", len(topic_bytes)) + topic_bytes
    if qos:
        head += struct.pack("!H", packet_id)
    variable = head + properties
    return bytes((0x30 | flags,)) + encode_length(len(variable) + len(payload)) + variable + payload


# -- acknowledgements ---------------------------------------------------------------------
def decode_ack(frame: Frame) -> tuple[int, int]:
    """PUBACK (and the other acknowledgements a client sends): packet id, reason code."""
    body = frame.body
    if len(body) < 2:
        raise ProtocolError("acknowledgement too short")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    reason = body[2] if len(body) > 2 else SUCCESS
    if len(body) > 3:
        p.decode(body, 3, p.ACK_PROPERTIES, "PUBACK")
    return packet_id, reason


def _ack(first: int, packet_id: int, reason: int, reason_string: str | None) -> bytes:
    if reason == SUCCESS and reason_string is None:
        return bytes((first, 2)) + struct.pack("!H", packet_id)
    props = p.encode({p.REASON_STRING: reason_string}) if reason_string else b"\x00"
    body = struct.pack("!H", packet_id) + bytes((reason,)) + props
    return bytes((first,)) + encode_length(len(body)) + body


def encode_puback(packet_id: int, reason: int = SUCCESS, reason_string: str | None = None) -> bytes:
    return _ack(0x40, packet_id, reason, reason_string)


def encode_suback(packet_id: int, codes: list[int], reason_string: str | None = None) -> bytes:
    props = p.encode({p.REASON_STRING: reason_string}) if reason_string else b"\x00"
    body = struct.pack("!H", packet_id) + props + bytes(codes)
    return b"\x90" + encode_length(len(body)) + body


def encode_unsuback(packet_id: int, codes: list[int]) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00" + bytes(codes)
    return b"\xb0" + encode_length(len(body)) + body


def encode_connack(session_present: bool, reason: int, props: p.Properties) -> bytes:
    body = bytes((1 if session_present else 0, reason)) + p.encode(props)
    return b"\x20" + encode_length(len(body)) + body


def encode_disconnect(reason: int, reason_string: str | None = None) -> bytes:
    if reason == SUCCESS and reason_string is None:
        return b"\xe0\x00"
    props = p.encode({p.REASON_STRING: reason_string}) if reason_string else b"\x00"
    body = bytes((reason,)) + props
    return b"\xe0" + encode_length(len(body)) + body


# -- CONNECT ------------------------------------------------------------------------------
def _field(body: bytes, pos: int, what: str) -> tuple[bytes, int]:
    return p.read_binary(body, pos, what)


def decode_connect(frame: Frame) -> Connect:
    """An MQTT 5 CONNECT (protocol level 5; the caller has read the level)."""
    body = frame.body
    name, pos = _field(body, 0, "protocol name")
    if pos + 4 > len(body):
        raise ProtocolError("CONNECT truncated")
    level = body[pos]
    flags = body[pos + 1]
    (keep_alive,) = struct.unpack_from("!H", body, pos + 2)
    pos += 4
    if flags & 0x01:
        raise ProtocolError("CONNECT reserved flag set")
    props, pos = p.decode(body, pos, p.CONNECT_PROPERTIES, "CONNECT")
    raw_id, pos = _field(body, pos, "client identifier")
    client_id = p.utf8(raw_id, "client identifier")
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        will_props, pos = p.decode(body, pos, p.WILL_PROPERTIES, "Will")
        raw_topic, pos = _field(body, pos, "will topic")
        will_payload, pos = _field(body, pos, "will payload")
        expiry = will_props.get(p.MESSAGE_EXPIRY)
        will = Will(
            p.utf8(raw_topic, "will topic"),
            will_payload,
            will_qos,
            bool(flags & 0x20),
            # expiry applied when the will is published; kept as an interval until then
            message_properties({k: v for k, v in will_props.items() if k != p.MESSAGE_EXPIRY}, 0),
            None if expiry is None else min(max(expiry, 1), MAX_MESSAGE_EXPIRY),
            will_props.get(p.WILL_DELAY, 0),
        )
    elif will_qos or flags & 0x20:
        raise ProtocolError("will QoS or retain without a will", MALFORMED)
    username = None
    if flags & 0x80:
        raw_user, pos = _field(body, pos, "user name")
        username = p.utf8(raw_user, "user name")
    if flags & 0x40:
        _, pos = _field(body, pos, "password")
    if pos != len(body):
        raise ProtocolError("CONNECT has bytes after its payload")
    receive_maximum = props.get(p.RECEIVE_MAXIMUM, 65535)
    if receive_maximum == 0:
        raise ProtocolError("Receive Maximum 0", PROTOCOL_ERROR)
    maximum_packet_size = props.get(p.MAXIMUM_PACKET_SIZE)
    if maximum_packet_size == 0:
        raise ProtocolError("Maximum Packet Size 0", PROTOCOL_ERROR)
    problem = props.get(p.REQUEST_PROBLEM_INFO, 1)
    if problem > 1 or props.get(p.REQUEST_RESPONSE_INFO, 0) > 1:
        raise ProtocolError("Request Problem/Response Information not 0 or 1", PROTOCOL_ERROR)
    return Connect(
        protocol_name=p.utf8(name, "protocol name"),
        protocol_level=level,
        client_id=client_id,
        clean_session=bool(flags & 0x02),
        keep_alive=keep_alive,
        username=username,
        will=will,
        session_expiry=props.get(p.SESSION_EXPIRY, 0),
        receive_maximum=receive_maximum,
        maximum_packet_size=maximum_packet_size,
        topic_alias_maximum=props.get(p.TOPIC_ALIAS_MAXIMUM, 0),
        request_problem_info=bool(problem),
        auth_method=props.get(p.AUTH_METHOD),
    )


def protocol_level(frame: Frame) -> int:
    """The protocol level of a CONNECT (4: MQTT 3.1.1, 5: MQTT 5), read before decoding
    it with the decoder of its version; -1 when it is too short to say."""
    body = frame.body
    if len(body) < 2:
        return -1
    (name_len,) = struct.unpack_from("!H", body, 0)
    at = 2 + name_len
    return body[at] if at < len(body) else -1


# -- SUBSCRIBE, UNSUBSCRIBE, DISCONNECT ----------------------------------------------------
def decode_subscribe(frame: Frame) -> Subscribe:
    body = frame.body
    if len(body) < 3:
        raise ProtocolError("SUBSCRIBE too short")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    props, pos = p.decode(body, 2, p.SUBSCRIBE_PROPERTIES, "SUBSCRIBE")
    filters: list[tuple[str, int]] = []
    while pos < len(body):
        raw, pos = _field(body, pos, "topic filter")
        if pos >= len(body):
            raise ProtocolError("SUBSCRIBE options missing")
        options = body[pos]
        pos += 1
        if options & 0xC0 or options & QOS_MASK == 3 or options & RETAIN_HANDLING == 0x30:
            raise ProtocolError(f"subscription options 0x{options:02x}", MALFORMED)
        filters.append((p.utf8(raw, "topic filter"), options))
    return Subscribe(packet_id, filters, props.get(p.SUBSCRIPTION_ID))


def decode_unsubscribe(frame: Frame) -> Unsubscribe:
    body = frame.body
    if len(body) < 3:
        raise ProtocolError("UNSUBSCRIBE too short")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    _, pos = p.decode(body, 2, p.UNSUBSCRIBE_PROPERTIES, "UNSUBSCRIBE")
    filters: list[str] = []
    while pos < len(body):
        raw, pos = _field(body, pos, "topic filter")
        filters.append(p.utf8(raw, "topic filter"))
    return Unsubscribe(packet_id, filters)


def decode_disconnect(frame: Frame) -> tuple[int, dict[int, Any]]:
    """A client's DISCONNECT: its reason code and properties (Session Expiry Interval)."""
    body = frame.body
    if not body:
        return SUCCESS, p.NONE
    reason = body[0]
    if len(body) == 1:
        return reason, p.NONE
    props, _ = p.decode(body, 1, p.DISCONNECT_PROPERTIES, "DISCONNECT")
    return reason, props
