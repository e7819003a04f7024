"""MQTT framing and the hot-path packets (emulator/broker/codec.py) and the amqtt adapter
for CONNECT/SUBSCRIBE/UNSUBSCRIBE (emulator/broker/amqtt_codec.py): bytes in, values out."""

from __future__ import annotations

import pytest

from emulator.broker import amqtt_codec, codec
from emulator.broker.codec import Frame, FrameReader, ProtocolError, Publish
from emulator.testing import connect_packet, mqtt_string, publish_packet


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),  # MQTT 3.1.1 2.2.3: the largest
    ],
)
def test_remaining_length_boundaries(length: int, encoded: bytes) -> None:
    assert codec.encode_length(length) == encoded


def test_frames_split_anywhere_are_reassembled() -> None:
    stream = (
        publish_packet("a/b", b"x" * 200, qos=1, packet_id=3)
        + b"\xc0\x00"
        + publish_packet("c", b"")
    )
    for cut in range(len(stream) + 1):
        reader = FrameReader(1024)
        frames = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert [f.type for f in frames] == [codec.PUBLISH, codec.PINGREQ, codec.PUBLISH], cut


def test_frames_byte_by_byte() -> None:
    reader = FrameReader(1024)
    frames: list[Frame] = []
    for byte in publish_packet("t", b"payload"):
        frames += reader.feed(bytes((byte,)))
    assert frames == [Frame(codec.PUBLISH, 0, mqtt_string("t") + b"payload")]


def test_a_frame_over_the_limit_is_refused_before_it_arrives() -> None:
    reader = FrameReader(100)
    with pytest.raises(ProtocolError, match="packet of 101 bytes is over the limit of 100"):
        reader.feed(b"\x30" + codec.encode_length(101))  # the header alone is enough


def test_a_frame_at_the_limit_is_accepted() -> None:
    body = b"x" * 100
    assert FrameReader(100).feed(b"\x30" + codec.encode_length(100) + body) == [
        Frame(codec.PUBLISH, 0, body)
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "malformed remaining length"),
        (b"\x00\x00", "reserved packet type 0"),
        (b"\xf0\x00", "reserved packet type 15"),
    ],
)
def test_malformed_frames(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        FrameReader(1 << 20).feed(data)


@pytest.mark.parametrize(
    ("qos", "retain", "dup", "packet_id"),
    [(0, False, False, 0), (0, True, False, 0), (1, False, False, 1), (1, True, True, 65535)],
)
def test_publish_round_trip(qos: int, retain: bool, dup: bool, packet_id: int) -> None:
    payload = bytes(range(256)) * 3
    data = codec.encode_publish("ü/topic".encode(), payload, qos, retain, packet_id, dup)
    (frame,) = FrameReader(1 << 20).feed(data)
    assert codec.decode_publish(frame) == Publish(
        "ü/topic", payload, qos, retain, dup, packet_id if qos else None
    )


def test_publish_encoding_matches_a_client_built_packet() -> None:
    assert codec.encode_publish(b"t/1", b"hi", 1, False, 7) == publish_packet(
        "t/1", b"hi", qos=1, packet_id=7
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x00", "PUBLISH too short"),
        (b"\x00\x05ab", "PUBLISH topic truncated"),
        (b"\x00\x02\xff\xfe", "PUBLISH topic is not valid UTF-8"),
    ],
)
def test_malformed_publish(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        codec.decode_publish(Frame(codec.PUBLISH, 0, body))


def test_publish_qos1_without_packet_id() -> None:
    with pytest.raises(ProtocolError, match="packet id truncated"):
        codec.decode_publish(Frame(codec.PUBLISH, 0x02, mqtt_string("t")))


def test_acknowledgements() -> None:
    assert codec.encode_puback(0x1234) == b"\x40\x02\x12\x34"
    assert codec.encode_connack(True, 0) == b"\x20\x02\x01\x00"
    assert codec.encode_connack(False, 7) == b"\x20\x02\x00\x07"
    assert codec.encode_suback(5, [0, 1, 0x80]) == b"\x90\x05\x00\x05\x00\x01\x80"
    assert codec.encode_unsuback(5) == b"\xb0\x02\x00\x05"
    assert codec.decode_packet_id(Frame(codec.PUBACK, 0, b"\x12\x34")) == 0x1234
    with pytest.raises(ProtocolError, match="PUBACK too short"):
        codec.decode_packet_id(Frame(codec.PUBACK, 0, b"\x12"))


def test_with_fixed_header_gives_the_packet_back() -> None:
    packet = publish_packet("t", b"x" * 300, qos=1, packet_id=2)
    (frame,) = FrameReader(1 << 20).feed(packet)
    assert codec.with_fixed_header(frame) == packet


def _frame(data: bytes) -> Frame:
    (frame,) = FrameReader(1 << 20).feed(data)
    return frame


def test_connect_decoded_through_amqtt() -> None:
    packet = amqtt_codec.decode_connect(
        _frame(connect_packet("dev-1", keepalive=30, clean=False, will=("w/t", b"bye")))
    )
    assert packet == amqtt_codec.Connect(
        protocol_name="MQTT",
        protocol_level=4,
        client_id="dev-1",
        clean_session=False,
        keep_alive=30,
        username=None,
        will=amqtt_codec.Will("w/t", b"bye", 0, False),
    )


def test_an_empty_client_id_stays_empty() -> None:
    """amqtt invents one ("amqtt/..."); whether to accept it is the protocol's call."""
    assert amqtt_codec.decode_connect(_frame(connect_packet(""))).client_id == ""


def test_subscribe_and_unsubscribe_decoded_through_amqtt() -> None:
    body = b"\x00\x07" + mqtt_string("a/#") + b"\x01" + mqtt_string("b") + b"\x00"
    subscribe = amqtt_codec.decode_subscribe(Frame(codec.SUBSCRIBE, 2, body))
    assert subscribe == amqtt_codec.Subscribe(7, [("a/#", 1), ("b", 0)])
    body = b"\x00\x08" + mqtt_string("a/#")
    unsubscribe = amqtt_codec.decode_unsubscribe(Frame(codec.UNSUBSCRIBE, 2, body))
    assert unsubscribe == amqtt_codec.Unsubscribe(8, ["a/#"])


def test_a_malformed_connect_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="malformed CONNECT"):
        amqtt_codec.decode_connect(Frame(codec.CONNECT, 0, b"\x00\x04MQ"))
