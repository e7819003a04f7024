"""Two ``Link`` ends joined in memory: a client and the broker, with no socket.

For tests and benchmarks (the idea of h11's ``tests/helpers.py``): ``link_pair()`` returns
the client's end and the broker's end; what one writes, the other reads. ``close()`` on
either end is seen by both as the end of the stream, after what was written is read.
"""

from __future__ import annotations

import asyncio


class MemoryLink:
    """One end of an in-memory pair (it satisfies ``emulator.broker.link.Link``)."""

    __slots__ = (
        "_closed",
        "_eof",
        "_inbox",
        "_peer",
        "_ready",
        "peer_ip",
        "peer_port",
        "principal",
        "transport_name",
    )

    def __init__(self, peer_ip: str = "127.0.0.1", peer_port: int = 0) -> None:
        self._inbox = bytearray()
        self._ready = asyncio.Event()
        self._eof = False
        self._closed = False
        self._peer: MemoryLink | None = None
        self.peer_ip = peer_ip
        self.peer_port = peer_port
        self.transport_name = "memory"
        self.principal: str | None = None

    @property
    def closed(self) -> bool:
        """This end was closed, or the other end was and everything was read."""
        return self._closed or (self._eof and not self._inbox)

    async def read(self) -> bytes:
        while not self._inbox:
            if self._eof:
                return b""
            self._ready.clear()
            await self._ready.wait()
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def take(self) -> bytes:
        """What arrived so far, without waiting (for tests without an event loop)."""
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def write(self, data: bytes) -> None:
        peer = self._peer
        if self._closed or peer is None or peer._eof:
            return
        peer._inbox += data
        peer._ready.set()

    def buffered(self) -> int:
        """What the other end has not read yet."""
        return len(self._peer._inbox) if self._peer is not None else 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._eof = True
        self._ready.set()
        peer = self._peer
        if peer is not None:
            peer._eof = True
            peer._ready.set()

    def abort(self) -> None:
        if self._peer is not None:
            self._peer._inbox.clear()  # what was "not sent yet" is lost
        self.close()

    async def wait_closed(self) -> None:
        return None


def link_pair(peer_ip: str = "127.0.0.1", peer_port: int = 50000) -> tuple[MemoryLink, MemoryLink]:
    """(client end, broker end); the broker end reports the client at ``peer_ip:peer_port``."""
    client = MemoryLink("broker", 1883)
    broker = MemoryLink(peer_ip, peer_port)
    client._peer = broker
    broker._peer = client
    return client, broker
