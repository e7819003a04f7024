"""Testing helpers for users and for us: paho-mqtt clients driven from asyncio, raw MQTT bytes.

paho runs its network loop in a thread; every callback is bridged into the test's event
loop, so tests await events (with a timeout) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from emulator.broker.codec import encode_length

TIMEOUT = 10.0


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class TestClient:
    """A real paho client over TCP or WebSocket, with awaitable events."""

    __test__ = False

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        transport: str = "tcp",
        clean_session: bool = True,
        keepalive: int = 60,
        ws_path: str = "/mqtt",
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.keepalive = host, port, keepalive
        self.client_id = client_id
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            transport="websockets" if transport == "websockets" else "tcp",
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if transport == "websockets":
            self.client.ws_set_options(path=ws_path)
        self.messages: asyncio.Queue[Received] = asyncio.Queue()
        self.connack: asyncio.Future[tuple[int, bool]] = self.loop.create_future()
        self.disconnected: asyncio.Future[int] = self.loop.create_future()
        self._acks: dict[int, asyncio.Future[Any]] = {}
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish

    # paho thread -> event loop
    def _call(self, fn: Any, *args: Any) -> None:
        # After the test, its loop may be closed before a teardown disconnects this client.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(fn, *args)

    @staticmethod
    def _settle(fut: asyncio.Future[Any], value: Any) -> None:
        if not fut.done():
            fut.set_result(value)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._call(self._settle, self.connack, (int(rc.value), bool(flags.session_present)))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._call(self._settle, self.disconnected, int(rc.value))
        self._call(self._settle, self.connack, (-1, False))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._call(
            self.messages.put_nowait,
            Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)),
        )

    def _ack(self, mid: int, value: Any) -> None:
        fut = self._acks.setdefault(mid, self.loop.create_future())
        self._settle(fut, value)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self._call(self._ack, mid, [int(c.value) for c in codes])

    def _on_unsubscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self._call(self._ack, mid, True)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        self._call(self._ack, mid, True)

    def _future(self, mid: int | None) -> asyncio.Future[Any]:
        assert mid is not None, "paho refused the request (not connected?)"
        return self._acks.setdefault(mid, self.loop.create_future())

    # API
    def will_set(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.client.will_set(topic, payload, qos, retain)

    async def connect(self, expect_rc: int | None = 0) -> tuple[int, bool]:
        await asyncio.to_thread(self.client.connect, self.host, self.port, self.keepalive)
        self.client.loop_start()
        async with asyncio.timeout(TIMEOUT):
            result = await self.connack
        if expect_rc is not None:
            assert result[0] == expect_rc, f"CONNACK {result}"
        return result

    async def subscribe(self, topic: str, qos: int = 0) -> list[int]:
        _, mid = self.client.subscribe(topic, qos)
        async with asyncio.timeout(TIMEOUT):
            return list(await self._future(mid))

    def subscribe_nowait(self, topic: str, qos: int = 0) -> asyncio.Future[Any]:
        _, mid = self.client.subscribe(topic, qos)
        return self._future(mid)

    async def unsubscribe(self, topic: str) -> None:
        _, mid = self.client.unsubscribe(topic)
        async with asyncio.timeout(TIMEOUT):
            await self._future(mid)

    async def publish(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
    ) -> None:
        info = self.client.publish(topic, payload, qos, retain)
        async with asyncio.timeout(TIMEOUT):
            await self._future(info.mid)

    def publish_nowait(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
    ) -> None:
        self.client.publish(topic, payload, qos, retain)

    async def next_message(self, timeout: float = TIMEOUT) -> Received:
        async with asyncio.timeout(timeout):
            return await self.messages.get()

    async def message_on(self, topic: str, timeout: float = TIMEOUT) -> Received:
        """The next message on ``topic``, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.messages.get()
                if msg.topic == topic:
                    return msg

    async def wait_disconnected(self, timeout: float = TIMEOUT) -> int:
        async with asyncio.timeout(timeout):
            return await self.disconnected

    async def disconnect(self) -> None:
        self.client.disconnect()
        try:
            await self.wait_disconnected()
        finally:
            await asyncio.to_thread(self.client.loop_stop)

    async def close(self) -> None:
        """Teardown: disconnect if still connected and stop paho's thread (off the loop)."""
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def close_now(self) -> None:
        """``close`` from synchronous code: disconnect and stop paho's thread."""
        self.client.disconnect()
        self.client.loop_stop()

    async def kill(self) -> None:
        """Drop the socket without DISCONNECT (an abnormal disconnect)."""
        await asyncio.to_thread(self.client.loop_stop)
        sock = self.client.socket()
        if sock is not None:
            sock.close()


def mqtt_string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def connect_packet(
    client_id: str | bytes,
    keepalive: int = 60,
    clean: bool = True,
    will: tuple[str, bytes] | None = None,
    level: int = 4,
) -> bytes:
    flags = 0x02 if clean else 0
    payload = mqtt_string(client_id)
    if will:
        flags |= 0x04
        payload += mqtt_string(will[0]) + mqtt_string(will[1])
    body = mqtt_string("MQTT") + bytes((level, flags)) + struct.pack("!H", keepalive) + payload
    return b"\x10" + encode_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    body = mqtt_string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes((0x30 | (qos << 1),)) + encode_length(len(body)) + body


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = TIMEOUT) -> bytes:
    """Everything the broker sends until it closes the connection."""
    data = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            data += chunk
    return data
