"""Byte pipes between a client and the broker: a TCP stream or an aiohttp WebSocket.

Writes are synchronous and coalesced: everything written during one turn of the event
loop leaves in one socket write (TCP) or one WebSocket frame, so a burst of deliveries
costs one system call per subscriber, not one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024


class Link(Protocol):
    peer_ip: str
    peer_port: int
    transport_name: str

    async def read(self) -> bytes:
        """Next bytes from the client; ``b""`` at end of stream."""
        ...

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int:
        """Bytes accepted by ``write`` but not yet handed to the kernel."""
        ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class TcpLink:
    __slots__ = (
        "_reader",
        "_writer",
        "_transport",
        "_pending",
        "_scheduled",
        "_loop",
        "peer_ip",
        "peer_port",
        "transport_name",
        "_closed",
    )

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._transport = writer.transport
        self._pending: list[bytes] = []
        self._scheduled = False
        self._closed = False
        self._loop = asyncio.get_running_loop()
        peer = writer.get_extra_info("peername") or ("", 0)
        self.peer_ip = str(peer[0])
        self.peer_port = int(peer[1])
        self.transport_name = "tcp"

    async def read(self) -> bytes:
        return await self._reader.read(READ_CHUNK)

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._closed or not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self) -> None:
        if self._closed:
            return
        self._flush()
        self._closed = True
        self._writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


class WebSocketLink:
    """MQTT over an aiohttp WebSocket: each binary frame carries any slice of the stream."""

    __slots__ = (
        "_ws",
        "_pending",
        "_size",
        "_wakeup",
        "_sender",
        "_closer",
        "peer_ip",
        "peer_port",
        "transport_name",
        "_closed",
        "principal",
    )

    def __init__(self, ws: web.WebSocketResponse, peer_ip: str, peer_port: int) -> None:
        self._ws = ws
        self._pending: list[bytes] = []
        self._size = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self.peer_ip = peer_ip
        self.peer_port = peer_port
        self.transport_name = "websocket"
        self.principal: str | None = None
        self._closer: asyncio.Task[None] | None = None
        # One sender task per connection (not per message) drains the coalesced buffer.
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def read(self) -> bytes:
        while True:
            msg = await self._ws.receive()
            if msg.type == WSMsgType.BINARY:
                data = msg.data
                if data:
                    return bytes(data)
                continue
            if msg.type == WSMsgType.TEXT:
                # MQTT over WebSocket uses binary frames only (MQTT 3.1.1 section 6).
                log.warning(
                    "text WebSocket frame from %s:%s; closing", self.peer_ip, self.peer_port
                )
                return b""
            return b""  # CLOSE, CLOSING, CLOSED, ERROR

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self._pending.append(data)
        self._size += len(data)
        self._wakeup.set()

    async def _send_loop(self) -> None:
        try:
            while not self._closed:
                await self._wakeup.wait()
                self._wakeup.clear()
                if not self._pending:
                    continue
                data = b"".join(self._pending)
                self._pending.clear()
                self._size = 0
                await self._ws.send_bytes(data)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    def buffered(self) -> int:
        return self._size

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        self._closer = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            if self._pending:
                await self._ws.send_bytes(b"".join(self._pending))
                self._pending.clear()
        with contextlib.suppress(Exception):
            await self._ws.close()

    async def wait_closed(self) -> None:
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer
        self._sender.cancel()
        with contextlib.suppress(BaseException):
            await self._sender
