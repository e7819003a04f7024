"""Raw MQTT byte streams over TCP or WebSocket, for tests that need to misbehave."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from emulator.app import Emulator
from emulator.broker.codec import Frame, FrameReader

TIMEOUT = 10.0


class RawConnection:
    def __init__(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.frames = FrameReader(10 * 1024 * 1024)
        self._pending: list[Frame] = []

    @classmethod
    async def open(cls, emulator: Emulator, transport: str) -> RawConnection:
        conn = cls()
        if transport == "websockets":
            conn._session = aiohttp.ClientSession()
            conn._ws = await conn._session.ws_connect(
                f"http://127.0.0.1:{emulator.http_port}/mqtt", protocols=("mqtt",)
            )
        else:
            assert emulator.mqtt_port is not None
            conn._reader, conn._writer = await asyncio.open_connection(
                "127.0.0.1", emulator.mqtt_port
            )
        return conn

    async def send(self, data: bytes) -> None:
        if self._ws is not None:
            await self._ws.send_bytes(data)
        else:
            assert self._writer is not None
            self._writer.write(data)
            await self._writer.drain()

    async def recv(self) -> bytes:
        """Next bytes, or b"" once the broker closed the connection."""
        if self._ws is not None:
            msg = await self._ws.receive()
            return bytes(msg.data) if msg.type == aiohttp.WSMsgType.BINARY else b""
        assert self._reader is not None
        try:
            return await self._reader.read(65536)
        except ConnectionError:
            return b""

    async def next_frame(self, timeout: float = TIMEOUT) -> Frame:
        async with asyncio.timeout(timeout):
            while not self._pending:
                data = await self.recv()
                if not data:
                    raise ConnectionError("closed by the broker")
                self._pending.extend(self.frames.feed(data))
            return self._pending.pop(0)

    async def wait_closed_by_broker(self, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while await self.recv():
                pass

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
