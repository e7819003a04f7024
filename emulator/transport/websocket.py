"""MQTT over WebSocket at ``/mqtt`` on the HTTP port, bridged into the one broker.

Browsers and the AWS SDKs connect to ``wss://<endpoint>/mqtt`` with the ``mqtt``
subprotocol, often with a SigV4-presigned query string; ``authenticate`` (set by the
security layer) decides on that query string and names the principal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from emulator.broker.broker import IoTBroker
from emulator.transport.links import WebSocketLink

log = logging.getLogger(__name__)

# Returns the principal for the request, or raises web.HTTPForbidden.
Authenticate = Callable[[web.Request], str | None]


class WebSocketEndpoint:
    def __init__(self, broker: IoTBroker, authenticate: Authenticate | None = None) -> None:
        self.broker = broker
        self.authenticate = authenticate

    async def handle(self, request: web.Request) -> web.StreamResponse:
        principal = self.authenticate(request) if self.authenticate else None
        ws = web.WebSocketResponse(protocols=("mqtt",), max_msg_size=0, autoping=True)
        await ws.prepare(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        ip, port = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        link = WebSocketLink(ws, ip, port)
        if principal:
            link.principal = principal
        await self.broker.serve_link(link)
        return ws
