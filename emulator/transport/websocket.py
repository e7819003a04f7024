"""MQTT over WebSocket at ``/mqtt`` on the HTTP port, bridged into the one broker.

Browsers and the AWS SDKs connect to ``wss://<endpoint>/mqtt`` with the ``mqtt``
subprotocol, often with a SigV4-presigned query string; ``authenticate`` (set by the
security layer) decides on that query string and names the principal.

Each binary frame carries any slice of the MQTT byte stream. Writes are coalesced: one
sender task per connection (not per message) sends what accumulated as one frame.
``buffered()`` counts both what waits for the sender and the frame it is sending (until
aiohttp has handed it to the transport and drained it below its high-water mark), so a
client that does not read reaches the broker's ``client_buffer_kib`` and is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from emulator.broker.link import Link
from emulator.broker.protocol import MAX_PACKET
from emulator.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0  # seconds for a closing link to send what is left and close

# Returns the principal for the request, or raises web.HTTPForbidden.
Authenticate = Callable[[web.Request], str | None]
ServeLink = Callable[[Link], Awaitable[None]]


class WebSocketLink:
    """MQTT over an aiohttp WebSocket."""

    __slots__ = (
        "_closed",
        "_closer",
        "_pending",
        "_sender",
        "_sending",
        "_size",
        "_wakeup",
        "_ws",
        "peer_ip",
        "peer_port",
        "principal",
        "transport_name",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        peer_ip: str,
        peer_port: int,
        principal: str | None = None,
    ) -> None:
        self._ws = ws
        self._pending: list[bytes] = []
        self._size = 0  # bytes in _pending
        self._sending = 0  # bytes of the frame the sender is sending
        self._wakeup = asyncio.Event()
        self._closed = False
        self.peer_ip = peer_ip
        self.peer_port = peer_port
        self.transport_name = "websocket"
        self.principal = principal
        self._closer: asyncio.Task[None] | None = None
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
                self._sending = self._size
                self._size = 0
                await self._ws.send_bytes(data)
                self._sending = 0
        except (ConnectionError, RuntimeError):
            pass  # the peer went away; read() reports the end

    def buffered(self) -> int:
        return self._size + self._sending

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        self._closer = asyncio.get_running_loop().create_task(self._close())

    def abort(self) -> None:
        """Drop what is not sent and the TCP connection under the WebSocket: a client
        that does not read would never answer a close frame."""
        self._closed = True
        self._pending.clear()
        self._size = 0
        self._sender.cancel()
        writer = self._ws._writer  # aiohttp has no public way to reach the transport
        if writer is not None and writer.transport is not None:
            writer.transport.abort()

    async def _close(self) -> None:
        try:
            # A peer that does not read would keep the send (and the close handshake)
            # waiting forever: past CLOSE_TIMEOUT the connection is reset.
            async with asyncio.timeout(CLOSE_TIMEOUT):
                with contextlib.suppress(Exception):
                    if self._pending:
                        await self._ws.send_bytes(b"".join(self._pending))
                        self._pending.clear()
                with contextlib.suppress(Exception):
                    await self._ws.close()
        except TimeoutError:
            self.abort()

    async def wait_closed(self) -> None:
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer
        await cancel_and_wait(self._sender)


# The largest WebSocket message read: the largest MQTT packet with its fixed header (type
# byte and up to 4 length bytes). aiohttp refuses a data frame whose declared length reaches
# max_msg_size before buffering its payload, closing with 1009 (message too big), so a
# client cannot make the emulator hold more than this per message.
MAX_WS_MESSAGE = MAX_PACKET + 5


class WebSocketEndpoint:
    """``GET /mqtt``: the upgrade, then the link into the broker. The HTTP guard
    (http_guard.py) has checked Origin, Host and, with credentials, SigV4 by then."""

    def __init__(self, serve_link: ServeLink, authenticate: Authenticate | None = None) -> None:
        self.serve_link = serve_link
        self.authenticate = authenticate

    async def handle(self, request: web.Request) -> web.StreamResponse:
        principal = self.authenticate(request) if self.authenticate else None
        ws = web.WebSocketResponse(
            protocols=("mqtt",), max_msg_size=MAX_WS_MESSAGE + 1, autoping=True
        )
        await ws.prepare(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        ip, port = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        await self.serve_link(WebSocketLink(ws, ip, port, principal or None))
        return ws
