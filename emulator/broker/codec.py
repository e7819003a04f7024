"""MQTT 3.1.1 framing and the packets on the hot path, encoded and decoded without I/O.

The broker reads whatever bytes arrive, feeds them to a ``FrameReader`` and gets whole
packets back; PUBLISH, PUBACK and the small acknowledgements are parsed and built here
because they carry every message. The rare, complex packets (CONNECT, SUBSCRIBE,
UNSUBSCRIBE) are decoded with amqtt's packet classes in ``amqtt_codec.py``.

``Frame`` and ``Publish`` are named tuples, not dataclasses: one of each is built per
message, and a tuple is several times cheaper to build than a frozen dataclass.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15  # MQTT 5 only; AWS IoT does not support it

PACKET_NAMES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
    15: "AUTH",
}

# The fixed-header flags each packet a client sends must have, but PUBLISH ([MQTT-2.2.2-2]).
REQUIRED_FLAGS = {
    CONNECT: 0,
    PUBACK: 0,
    PUBREC: 0,
    PUBREL: 2,
    PUBCOMP: 0,
    SUBSCRIBE: 2,
    UNSUBSCRIBE: 2,
    PINGREQ: 0,
    DISCONNECT: 0,
}

PINGRESP_BYTES = b"\xd0\x00"
DISCONNECT_BYTES = b"\xe0\x00"
SUBACK_FAILURE = 0x80

_new_tuple = tuple.__new__  # builds a named tuple without its Python-level __new__


# MQTT 5 reason codes of a broken packet (DISCONNECT, or CONNACK before the session).
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
PACKET_TOO_LARGE = 0x95


class ProtocolError(Exception):
    """The peer broke the protocol; the connection is closed (only that one). ``code`` is
    the MQTT 5 reason code an MQTT 5 client is told in the DISCONNECT."""

    def __init__(self, message: str, code: int = MALFORMED) -> None:
        super().__init__(message)
        self.code = code


class Frame(NamedTuple):
    """One MQTT control packet: type, the 4 flag bits and the bytes after the fixed header."""

    type: int
    flags: int
    body: bytes


class FrameReader:
    """Accumulates bytes and splits them into frames; rejects frames over ``max_size``
    as soon as their length is known, without buffering them. A bad frame behind good
    ones in the same bytes is kept in ``error`` (the good ones are returned first: packets
    are handled in order, so a CONNECT is answered before what follows it fails)."""

    __slots__ = ("_buf", "_max", "error")

    def __init__(self, max_size: int) -> None:
        self._buf = bytearray()
        self._max = max_size
        self.error: ProtocolError | None = None

    def limit(self, max_size: int) -> None:
        """A new maximum frame size (MQTT 5's, once the CONNECT says the version)."""
        self._max = max_size

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        try:
            self._split(data, frames)
        except ProtocolError as exc:
            if not frames:
                raise
            self.error = exc
            self._buf.clear()
        return frames

    def _split(self, data: bytes, frames: list[Frame]) -> None:
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            first = buf[pos]
            length = 0
            multiplier = 1
            index = pos + 1
            while True:
                if index >= end:
                    if index - pos > 4:
                        raise ProtocolError("malformed remaining length")
                    self._compact(pos)
                    return
                byte = buf[index]
                length += (byte & 0x7F) * multiplier
                index += 1
                if not byte & 0x80:
                    break
                multiplier *= 128
                if index - pos > 4:
                    raise ProtocolError("malformed remaining length")
            if length > self._max:
                raise ProtocolError(
                    f"packet of {length} bytes is over the limit of {self._max}", PACKET_TOO_LARGE
                )
            if end - index < length:
                break
            packet_type = first >> 4
            if packet_type == 0 or packet_type == 15:
                # 15 is MQTT 5's AUTH, which AWS IoT does not support: a protocol error
                # in both versions.
                raise ProtocolError(f"reserved packet type {packet_type}", PROTOCOL_ERROR)
            frames.append(
                _new_tuple(Frame, (packet_type, first & 0x0F, bytes(buf[index : index + length])))
            )
            pos = index + length
        self._compact(pos)

    def _compact(self, pos: int) -> None:
        if pos:
            del self._buf[:pos]


def encode_length(length: int) -> bytes:
    """MQTT's "remaining length": 7 bits per byte, high bit set on all but the last."""
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Publish(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int | None


def decode_publish(frame: Frame) -> Publish:
    body = frame.body
    if len(body) < 2:
        raise ProtocolError("PUBLISH too short")
    (topic_len,) = struct.unpack_from("!H", body, 0)
    end = 2 + topic_len
    if len(body) < end:
        raise ProtocolError("PUBLISH topic truncated")
    try:
        topic = body[2:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("PUBLISH topic is not valid UTF-8") from exc
    qos = (frame.flags >> 1) & 0x03
    packet_id = None
    if qos:
        if len(body) < end + 2:
            raise ProtocolError("PUBLISH packet id truncated")
        (packet_id,) = struct.unpack_from("!H", body, end)
        if not packet_id:
            raise ProtocolError("PUBLISH with packet id 0")
        end += 2
    flags = frame.flags
    return _new_tuple(Publish, (topic, body[end:], qos, flags & 1 == 1, flags & 8 == 8, packet_id))


def encode_publish(
    topic_bytes: bytes,
    payload: bytes,
    qos: int,
    retain: bool,
    packet_id: int = 0,
    dup: bool = False,
) -> bytes:
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    if qos:
        variable = struct.pack("!H", len(topic_bytes)) + topic_bytes + struct.pack("!H", packet_id)
    else:
        variable = struct.pack("!H", len(topic_bytes)) + topic_bytes
    return bytes((0x30 | flags,)) + encode_length(len(variable) + len(payload)) + variable + payload


def decode_packet_id(frame: Frame) -> int:
    if len(frame.body) < 2:
        raise ProtocolError(f"{PACKET_NAMES.get(frame.type, frame.type)} too short")
    return int(struct.unpack_from("!H", frame.body, 0)[0])


def encode_puback(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


def encode_connack(session_present: bool, return_code: int) -> bytes:
    return b"\x20\x02" + bytes((1 if session_present else 0, return_code))


def encode_suback(packet_id: int, codes: list[int]) -> bytes:
    return b"\x90" + encode_length(2 + len(codes)) + struct.pack("!H", packet_id) + bytes(codes)


def encode_unsuback(packet_id: int) -> bytes:
    return b"\xb0\x02" + struct.pack("!H", packet_id)


def with_fixed_header(frame: Frame) -> bytes:
    """The frame's full bytes again, for decoders that want the whole packet."""
    return bytes(((frame.type << 4) | frame.flags,)) + encode_length(len(frame.body)) + frame.body
