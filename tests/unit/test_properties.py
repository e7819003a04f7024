"""The MQTT 5 property codec (``broker/properties.py``) and the MQTT 5 packets on top of
it (``broker/codec5.py``): what a hostile or broken client can send is refused with the
reason code MQTT 5 gives it, and never raises anything but ``ProtocolError``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.broker import codec, codec5
from emulator.broker import properties as p


def test_round_trip_keeps_user_properties_in_order() -> None:
    props = {
        p.CONTENT_TYPE: "text/plain",
        p.MESSAGE_EXPIRY: 30,
        p.USER_PROPERTY: (("a", "1"), ("b", "2"), ("a", "3")),
        p.CORRELATION_DATA: b"\x00\xff",
    }
    data = p.encode(props)
    decoded, end = p.decode(data, 0, p.PUBLISH_PROPERTIES, "PUBLISH")
    assert end == len(data)
    assert decoded == props


@pytest.mark.parametrize(
    ("data", "code", "text"),
    [
        (b"\x04\x03\x00\x05a", codec.MALFORMED, "truncated"),  # a 5-byte string of 1 byte
        (b"\x08\x03\x00\x01a\x03\x00\x01b", codec.PROTOCOL_ERROR, "twice"),
        (b"\x03\x02\x00\x00", codec.MALFORMED, "truncated"),
        (b"\x05\x11\x00\x00\x00\x01", codec.PROTOCOL_ERROR, "not allowed in PUBLISH"),
        (b"\x02\x7f\x00", codec.PROTOCOL_ERROR, "not allowed"),
        (b"\x05\x03\x00\x02\xff\xfe", codec.MALFORMED, "UTF-8"),
        (b"\x05\x03\x00\x02a\x00", codec.MALFORMED, "U\\+0000"),
    ],
)
def test_bad_properties_are_refused_with_their_reason(data: bytes, code: int, text: str) -> None:
    with pytest.raises(codec.ProtocolError, match=text) as caught:
        p.decode(data, 0, p.PUBLISH_PROPERTIES, "PUBLISH")
    assert caught.value.code == code


def test_reserved_subscription_option_bits_are_malformed() -> None:
    body = b"\x00\x01\x00" + b"\x00\x03a/b" + bytes((0xC1,))
    with pytest.raises(codec.ProtocolError, match="options"):
        codec5.decode_subscribe(codec.Frame(codec.SUBSCRIBE, 2, body))


def test_a_publish_topic_that_is_not_utf8_is_malformed() -> None:
    body = b"\x00\x02\xff\xfe\x00payload"
    with pytest.raises(codec.ProtocolError, match="UTF-8") as caught:
        codec5.decode_publish(codec.Frame(codec.PUBLISH, 0, body))
    assert caught.value.code == codec.MALFORMED


@given(st.binary(max_size=64), st.integers(0, 15))
def test_any_bytes_decode_or_raise_protocol_error(body: bytes, flags: int) -> None:
    for decode in (
        lambda f: codec5.decode_publish(f),
        lambda f: codec5.decode_connect(f),
        lambda f: codec5.decode_subscribe(f),
        lambda f: codec5.decode_unsubscribe(f),
        lambda f: codec5.decode_disconnect(f),
        lambda f: codec5.decode_ack(f),
    ):
        try:
            decode(codec.Frame(codec.PUBLISH, flags, body))
        except codec.ProtocolError:
            pass
