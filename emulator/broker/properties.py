"""MQTT 5 properties: the table of identifiers and types, decoded and encoded without I/O.

A property section is a variable byte integer (its length) followed by properties, each
an identifier and a value of the identifier's type (MQTT 5.0, section 2.2.2.2). Every
MQTT 5 packet with properties goes through ``decode`` and ``encode`` here, with the set of
identifiers its packet type allows: the packet modules (``codec.py`` for PUBLISH,
``codec5.py`` for the rest) stay free of property details, and a property is added in
one place, the ``TYPES`` table.

Decoded properties are a dict from identifier to value; user properties, which may repeat
and keep their order, are a tuple of (key, value) pairs under ``USER_PROPERTY``.
"""

from __future__ import annotations

import struct
from typing import Any

from emulator.broker.codec import MALFORMED, PROTOCOL_ERROR, ProtocolError, encode_length

PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
AUTH_DATA = 0x16
REQUEST_PROBLEM_INFO = 0x17
WILL_DELAY = 0x18
REQUEST_RESPONSE_INFO = 0x19
RESPONSE_INFO = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUB_AVAILABLE = 0x28
SUB_ID_AVAILABLE = 0x29
SHARED_SUB_AVAILABLE = 0x2A

BYTE, TWO, FOUR, VARINT, STRING, BINARY, PAIR = range(7)

# Identifier -> (type, name for error messages).
TYPES: dict[int, tuple[int, str]] = {
    PAYLOAD_FORMAT: (BYTE, "Payload Format Indicator"),
    MESSAGE_EXPIRY: (FOUR, "Message Expiry Interval"),
    CONTENT_TYPE: (STRING, "Content Type"),
    RESPONSE_TOPIC: (STRING, "Response Topic"),
    CORRELATION_DATA: (BINARY, "Correlation Data"),
    SUBSCRIPTION_ID: (VARINT, "Subscription Identifier"),
    SESSION_EXPIRY: (FOUR, "Session Expiry Interval"),
    ASSIGNED_CLIENT_ID: (STRING, "Assigned Client Identifier"),
    SERVER_KEEP_ALIVE: (TWO, "Server Keep Alive"),
    AUTH_METHOD: (STRING, "Authentication Method"),
    AUTH_DATA: (BINARY, "Authentication Data"),
    REQUEST_PROBLEM_INFO: (BYTE, "Request Problem Information"),
    WILL_DELAY: (FOUR, "Will Delay Interval"),
    REQUEST_RESPONSE_INFO: (BYTE, "Request Response Information"),
    RESPONSE_INFO: (STRING, "Response Information"),
    SERVER_REFERENCE: (STRING, "Server Reference"),
    REASON_STRING: (STRING, "Reason String"),
    RECEIVE_MAXIMUM: (TWO, "Receive Maximum"),
    TOPIC_ALIAS_MAXIMUM: (TWO, "Topic Alias Maximum"),
    TOPIC_ALIAS: (TWO, "Topic Alias"),
    MAXIMUM_QOS: (BYTE, "Maximum QoS"),
    RETAIN_AVAILABLE: (BYTE, "Retain Available"),
    USER_PROPERTY: (PAIR, "User Property"),
    MAXIMUM_PACKET_SIZE: (FOUR, "Maximum Packet Size"),
    WILDCARD_SUB_AVAILABLE: (BYTE, "Wildcard Subscription Available"),
    SUB_ID_AVAILABLE: (BYTE, "Subscription Identifier Available"),
    SHARED_SUB_AVAILABLE: (BYTE, "Shared Subscription Available"),
}

# What a client may send in each packet (MQTT 5.0, 2.2.2.2); Subscription Identifier
# is allowed in SUBSCRIBE by the specification, and refused by the protocol (AWS).
_MESSAGE = frozenset(
    {PAYLOAD_FORMAT, MESSAGE_EXPIRY, CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION_DATA, USER_PROPERTY}
)
PUBLISH_PROPERTIES = _MESSAGE | {TOPIC_ALIAS, SUBSCRIPTION_ID}
WILL_PROPERTIES = _MESSAGE | {WILL_DELAY}
CONNECT_PROPERTIES = frozenset(
    {
        SESSION_EXPIRY,
        AUTH_METHOD,
        AUTH_DATA,
        REQUEST_PROBLEM_INFO,
        REQUEST_RESPONSE_INFO,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
    }
)
SUBSCRIBE_PROPERTIES = frozenset({SUBSCRIPTION_ID, USER_PROPERTY})
UNSUBSCRIBE_PROPERTIES = frozenset({USER_PROPERTY})
ACK_PROPERTIES = frozenset({REASON_STRING, USER_PROPERTY})
DISCONNECT_PROPERTIES = frozenset({SESSION_EXPIRY, REASON_STRING, USER_PROPERTY, SERVER_REFERENCE})
AUTH_PROPERTIES = frozenset({AUTH_METHOD, AUTH_DATA, REASON_STRING, USER_PROPERTY})

Properties = dict[int, Any]
NONE: Properties = {}
WIRE = -1  # not a property: where codec5 keeps a PUBLISH's property section as received


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A variable byte integer at ``pos``: its value and the position after it."""
    value = 0
    shift = 0
    for index in range(pos, min(pos + 4, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise ProtocolError("malformed variable byte integer", MALFORMED)


def utf8(raw: bytes, what: str) -> str:
    """An MQTT UTF-8 string: valid UTF-8 without U+0000 (MQTT 5.0, 1.5.4), else malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not valid UTF-8", MALFORMED) from exc
    if "\x00" in text:
        raise ProtocolError(f"{what} contains U+0000", MALFORMED)
    return text


def read_string(data: bytes, pos: int, what: str) -> tuple[str, int]:
    raw, pos = read_binary(data, pos, what)
    return utf8(raw, what), pos


def read_binary(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    end = pos + 2
    if end > len(data):
        raise ProtocolError(f"{what} truncated", MALFORMED)
    (length,) = struct.unpack_from("!H", data, pos)
    if end + length > len(data):
        raise ProtocolError(f"{what} truncated", MALFORMED)
    return bytes(data[end : end + length]), end + length


def decode(data: bytes, pos: int, allowed: frozenset[int], packet: str) -> tuple[Properties, int]:
    """The property section at ``pos``: the properties and the position after them.
    A property the packet may not carry, or one given twice (user properties aside), is a
    protocol error; a truncated or badly typed one is malformed."""
    length, pos = read_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError(f"{packet} properties truncated", MALFORMED)
    if not length:
        return NONE, pos
    props: Properties = {}
    users: list[tuple[str, str]] = []
    while pos < end:
        ident, pos = read_varint(data, pos)
        kind = TYPES.get(ident)
        if kind is None or ident not in allowed:
            name = kind[1] if kind else f"property 0x{ident:02x}"
            raise ProtocolError(f"{name} is not allowed in {packet}", PROTOCOL_ERROR)
        kind_type, name = kind
        value: Any
        if kind_type == BYTE:
            if pos >= end:
                raise ProtocolError(f"{name} truncated", MALFORMED)
            value = data[pos]
            pos += 1
        elif kind_type == TWO:
            if pos + 2 > end:
                raise ProtocolError(f"{name} truncated", MALFORMED)
            (value,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif kind_type == FOUR:
            if pos + 4 > end:
                raise ProtocolError(f"{name} truncated", MALFORMED)
            (value,) = struct.unpack_from("!I", data, pos)
            pos += 4
        elif kind_type == VARINT:
            value, pos = read_varint(data, pos)
        elif kind_type == STRING:
            start = pos + 2
            if start > end:
                raise ProtocolError(f"{name} truncated", MALFORMED)
            stop = start + (data[pos] << 8 | data[pos + 1])
            if stop > end:
                raise ProtocolError(f"{name} truncated", MALFORMED)
            value = utf8(data[start:stop], name)
            pos = stop
        elif kind_type == BINARY:
            value, pos = read_binary(data, pos, name)
        else:
            key, pos = read_string(data, pos, name)
            text, pos = read_string(data, pos, name)
            users.append((key, text))
            continue
        if pos > end:
            raise ProtocolError(f"{name} runs past the properties", MALFORMED)
        if ident in props:
            raise ProtocolError(f"{name} given twice in {packet}", PROTOCOL_ERROR)
        props[ident] = value
    if pos != end:
        raise ProtocolError(f"{packet} properties run past their length", MALFORMED)
    if users:
        props[USER_PROPERTY] = tuple(users)
    return props, pos


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def encode(props: Properties) -> bytes:
    """A property section (its length first) for ``props``; ``USER_PROPERTY`` takes a
    sequence of pairs. Identifiers are written in the order given."""
    out = bytearray()
    for ident, value in props.items():
        if value is None:
            continue
        kind_type = TYPES[ident][0]
        if kind_type == PAIR:
            for key, text in value:
                out.append(ident)
                out += _string(key) + _string(text)
            continue
        out.append(ident)
        if kind_type == BYTE:
            out.append(value)
        elif kind_type == TWO:
            out += struct.pack("!H", value)
        elif kind_type == FOUR:
            out += struct.pack("!I", value)
        elif kind_type == VARINT:
            out += encode_length(value)
        else:
            out += _string(value)
    return encode_length(len(out)) + bytes(out)
