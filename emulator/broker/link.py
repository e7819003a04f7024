"""What the broker needs from a transport: a ``Link``, one client's byte pipe.

The broker defines it and the transports (``emulator/transport/``: TCP, WebSocket, the
in-memory pair of the tests) implement it, so the broker never imports a transport.
Writes are synchronous: a link buffers and coalesces them, so delivering a message to a
subscriber is one method call, with no task and no ``await``.
"""

from __future__ import annotations

from typing import Protocol


class Outlet(Protocol):
    """The writing half of a link: what the broker's state holds for each connected client
    to deliver messages (pure code calls it; the link does the I/O)."""

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int:
        """Bytes accepted by ``write`` but not yet handed to the kernel (slow consumers)."""
        ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Close at once, discarding what is not sent yet (a client that does not read)."""
        ...


class Link(Outlet, Protocol):
    """One client connection's bytes, in both directions, and who is at the other end."""

    peer_ip: str
    peer_port: int
    transport_name: str
    # Set by the transport when it has already authenticated the client (a SigV4-presigned
    # WebSocket URL names an access key); None: the MQTT username or "anonymous".
    principal: str | None

    async def read(self) -> bytes:
        """Next bytes from the client; ``b""`` at end of stream."""
        ...

    async def wait_closed(self) -> None: ...
