"""The one place amqtt is used: its packet classes decode CONNECT, SUBSCRIBE and UNSUBSCRIBE.

These packets are rare (once per connection or per subscription) and full of optional
fields, so we reuse amqtt's decoders rather than write our own; the packets on the hot path
are ours (``codec.py``). amqtt's decoders are coroutines over a stream reader. Over a
reader that holds the whole frame in memory they never suspend, so ``_run`` drives them to
completion with one ``send(None)``, synchronously, and the protocol stays free of asyncio.
Everything amqtt raises on malformed input becomes our ``ProtocolError``.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from amqtt.adapters import ReaderAdapter
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.packet import MQTTFixedHeader
from amqtt.mqtt.subscribe import SubscribePacket
from amqtt.mqtt.unsubscribe import UnsubscribePacket

from emulator.broker.codec import Frame, ProtocolError, with_fixed_header
from emulator.broker.packets import Connect, Subscribe, Unsubscribe, Will

T = TypeVar("T")

_DECODE_ERRORS = (AMQTTError, MQTTError, NoDataError, ValueError, UnicodeDecodeError)


class _BytesReader(ReaderAdapter):
    """One framed packet, in memory: reads never wait."""

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


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends to its result, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise ProtocolError("amqtt's decoder waited for more bytes than the packet holds")


async def _decode(frame: Frame, packet_class: Any) -> Any:
    reader = _BytesReader(with_fixed_header(frame))
    header = await MQTTFixedHeader.from_stream(reader)
    return await packet_class.from_stream(reader, fixed_header=header)


def _packet(frame: Frame, packet_class: Any, name: str) -> Any:
    try:
        return _run(_decode(frame, packet_class))
    except _DECODE_ERRORS as exc:
        raise ProtocolError(f"malformed {name}: {exc}") from exc


def _check_connect(body: bytes) -> None:
    """What amqtt lets through in an MQTT 3.1.1 CONNECT and the specification makes a
    reason to close (found by the Eclipse Paho suite's checks): the reserved flag
    [MQTT-3.1.2-3], will QoS or retain without a will [MQTT-3.1.2-13/15], will QoS 3
    [MQTT-3.1.2-14], a password without a user name [MQTT-3.1.2-22], a client ID that is
    not UTF-8 [MQTT-1.5.3-1]."""
    if len(body) < 2:
        return  # amqtt says what is wrong
    at = 2 + int.from_bytes(body[:2])
    if at + 6 > len(body):
        return
    flags = body[at + 1]
    if flags & 0x01:
        raise ProtocolError("CONNECT reserved flag set")
    if not flags & 0x04 and flags & 0x38:
        raise ProtocolError("CONNECT has will QoS or retain without a will")
    if flags & 0x18 == 0x18:
        raise ProtocolError("CONNECT has will QoS 3")
    if flags & 0x40 and not flags & 0x80:
        raise ProtocolError("CONNECT has a password without a user name")
    start = at + 6
    end = start + int.from_bytes(body[at + 4 : at + 6])
    try:
        body[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("CONNECT client identifier is not valid UTF-8") from None


def decode_connect(frame: Frame) -> Connect:
    _check_connect(frame.body)
    packet = _packet(frame, ConnectPacket, "CONNECT")
    assert isinstance(packet, ConnectPacket)
    payload = packet.payload
    # amqtt invents an ID ("amqtt/...") for an empty one; the protocol decides instead.
    client_id = "" if getattr(payload, "client_id_is_random", False) else packet.client_id or ""
    will = None
    if packet.will_flag and packet.will_topic:
        will = Will(
            packet.will_topic,
            bytes(packet.will_message or b""),
            int(packet.will_qos or 0),
            bool(packet.will_retain_flag),
        )
    return Connect(
        protocol_name=str(packet.proto_name),
        protocol_level=int(packet.proto_level),
        client_id=client_id,
        clean_session=bool(packet.clean_session_flag),
        keep_alive=int(packet.keep_alive),
        username=packet.username if packet.username_flag else None,
        will=will,
    )


def decode_subscribe(frame: Frame) -> Subscribe:
    packet = _packet(frame, SubscribePacket, "SUBSCRIBE")
    assert isinstance(packet, SubscribePacket)
    return Subscribe(packet.variable_header.packet_id, list(packet.payload.topics or []))


def decode_unsubscribe(frame: Frame) -> Unsubscribe:
    packet = _packet(frame, UnsubscribePacket, "UNSUBSCRIBE")
    assert isinstance(packet, UnsubscribePacket)
    return Unsubscribe(packet.variable_header.packet_id, list(packet.payload.topics or []))
