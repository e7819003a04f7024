"""MQTT over TLS with client certificates: AWS IoT's port 8883 (and 443 with ALPN
``x-amzn-mqtt-ca``, which the context selects when a client offers it).

The TLS handshake requires a client certificate the server can verify (issued by the local
CA, or registered without a CA and trusted as it is). Once it completes, ``admit`` is asked
about the certificate (its DER bytes): it answers the principal (the certificate ID) when
the certificate is registered and ACTIVE, or None, and then the connection is closed before
any MQTT is read, as AWS IoT refuses a device whose certificate it does not accept.
Admitted connections are ``TcpLink``s whose ``principal`` is the certificate ID; the
broker serves them like any other link.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from emulator.transport.tcp import ServeLink, TcpLink

log = logging.getLogger(__name__)

# DER bytes of the client's certificate -> its principal, or None to refuse the connection
Admit = Callable[[bytes], str | None]


class TlsListener:
    """The MQTT-over-TLS port. ``stop()`` stops accepting; the broker closes connections."""

    def __init__(
        self, serve_link: ServeLink, host: str, port: int, context: ssl.SSLContext, admit: Admit
    ) -> None:
        self._serve_link = serve_link
        self.host = host
        self.port = port
        self.context = context
        self._admit = admit
        self._server: asyncio.Server | None = None
        self.refused = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accepted, self.host, self.port, ssl=self.context, reuse_address=True
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("MQTT over TLS (client certificates) on %s:%d", self.host, self.port)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        principal = self._admit(der) if der else None
        if principal is None:
            self.refused += 1
            peer = writer.get_extra_info("peername") or ("?", 0)
            log.warning(
                "MQTT over TLS from %s:%s refused: its certificate is not registered or not ACTIVE",
                peer[0],
                peer[1],
            )
            writer.transport.abort()
            return
        link = TcpLink(reader, writer)
        link.principal = principal
        link.transport_name = "tls"
        await self._serve_link(link)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
