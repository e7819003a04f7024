"""MQTT over plain TCP: the listener on the MQTT port and the ``Link`` of each connection.

A plain asyncio server: each accepted connection becomes a ``TcpLink`` handed to the
broker's ``serve_link``, which runs until the connection ends. Bound to port 0, the
listener reports the port the kernel chose (``port``).

Writes are synchronous and coalesced: everything written during one turn of the event
loop leaves in one ``transport.write``, so a burst of deliveries costs one system call per
subscriber, not one per message. ``buffered()`` counts what waits for that flush and what
the transport holds: the broker disconnects a client over ``client_buffer_kib``
(``abort()``: a client that does not read would keep ``close()`` waiting for the flush).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from emulator.broker.link import Link

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
# A closed link whose peer does not read what is left to send is reset after this: the
# connection's task must end (and its buffer be freed) whatever the client does.
CLOSE_TIMEOUT = 10.0

ServeLink = Callable[[Link], Awaitable[None]]


class TcpLink:
    __slots__ = (
        "_closed",
        "_loop",
        "_pending",
        "_reader",
        "_scheduled",
        "_size",
        "_transport",
        "_writer",
        "peer_ip",
        "peer_port",
        "principal",
        "transport_name",
    )

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._transport = writer.transport
        self._pending: list[bytes] = []
        self._size = 0  # bytes in _pending
        self._scheduled = False
        self._closed = False
        self._loop = asyncio.get_running_loop()
        peer = writer.get_extra_info("peername") or ("", 0)
        self.peer_ip = str(peer[0])
        self.peer_port = int(peer[1])
        self.transport_name = "tcp"
        self.principal: str | None = None

    async def read(self) -> bytes:
        return await self._reader.read(READ_CHUNK)

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self._pending.append(data)
        self._size += len(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._closed or not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def buffered(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def close(self) -> None:
        if self._closed:
            return
        self._flush()
        self._closed = True
        self._writer.close()

    def abort(self) -> None:
        self._closed = True
        self._pending.clear()
        self._size = 0
        self._transport.abort()

    async def wait_closed(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._writer.wait_closed()
        except TimeoutError:
            self._transport.abort()  # the peer does not read what is left: drop it
        except (ConnectionError, OSError):
            pass  # the peer reset the connection: it is closed all the same


class TcpListener:
    """The MQTT TCP port. ``stop()`` stops accepting; the broker closes the connections."""

    def __init__(self, serve_link: ServeLink, host: str, port: int) -> None:
        self._serve_link = serve_link
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accepted, self.host, self.port, reuse_address=True
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("MQTT over TCP on %s:%d", self.host, self.port)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve_link(TcpLink(reader, writer))

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
