"""The driver of one client connection: reads its ``Link``, feeds the protocol, applies.

All decisions are in ``protocol.py`` (pure); this loop only does the I/O: waits for bytes
until the protocol's ``deadline`` (CONNECT in time, then 1.5 x keep-alive), passes them
in with the time, and applies the outputs in order: writes to the link, publishes through
the broker (or hands a Basic Ingest message to its rule), closes a taken-over connection's link, starts a session's expiry timer or its
resend timer. Over the read-throughput quota the protocol sets ``resume_at``: the driver
waits until then before it reads again (the client's bytes wait in the kernel). When
the protocol is no longer open (or the stream ends, or the task is cancelled) the link is
closed and ``end()``'s outputs are applied: Last Will, ``disconnected`` event.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from emulator.broker.link import Link
from emulator.broker.protocol import (
    CloseLink,
    MqttProtocol,
    Output,
    PublishLater,
    StartExpiry,
    StartResend,
)
from emulator.broker.sessions import Session
from emulator.clock import now_ms
from emulator.messages import InboundMessage, IngestMessage


class Hub(Protocol):
    """What a connection needs from the broker (``IoTBroker`` is one)."""

    def publish(self, message: InboundMessage) -> None: ...

    def ingest(self, message: IngestMessage) -> None: ...

    def start_expiry(self, client_id: str, absences: int, after: float | None = None) -> None: ...

    def publish_later(self, client_id: str, message: InboundMessage, delay: float) -> None: ...

    def start_resend(self, session: Session, owner: MqttProtocol) -> None: ...


class Connection:
    __slots__ = ("hub", "link", "protocol")

    def __init__(self, link: Link, protocol: MqttProtocol, hub: Hub) -> None:
        self.link = link
        self.protocol = protocol
        self.hub = hub

    async def run(self) -> None:
        link = self.link
        protocol = self.protocol
        try:
            while protocol.open:
                deadline = protocol.deadline
                timeout = None if deadline is None else max(deadline - now_ms(), 0) / 1000
                try:
                    async with asyncio.timeout(timeout):
                        data = await link.read()
                except TimeoutError:
                    self.apply(protocol.timed_out())
                    break
                if not data:
                    protocol.connection_lost()
                    break
                self.apply(protocol.receive(data, now_ms()))
                while protocol.pending:
                    self.apply(protocol.receive(b"", now_ms()))
                if protocol.resume_at and protocol.open:
                    # Over the throughput quota: read again once it is paid for.
                    await asyncio.sleep(max(protocol.resume_at - now_ms(), 0) / 1000)
        except (ConnectionError, OSError):
            protocol.connection_lost()
        finally:
            link.close()
            self.apply(protocol.end(now_ms()))
            await link.wait_closed()

    def apply(self, outputs: list[Output]) -> None:
        publish = self.hub.publish
        write = self.link.write
        for item in outputs:
            if type(item) is InboundMessage:
                publish(item)
            elif type(item) is bytes:
                write(item)
            elif type(item) is IngestMessage:  # tested after the usual two: free for them
                self.hub.ingest(item)
            elif isinstance(item, CloseLink):
                if item.last:
                    item.link.write(item.last)
                item.link.close()
            elif isinstance(item, StartExpiry):
                self.hub.start_expiry(item.client_id, item.absences, item.after)
            elif isinstance(item, PublishLater):
                self.hub.publish_later(item.client_id, item.message, item.delay)
            elif isinstance(item, StartResend):
                self.hub.start_resend(item.session, item.owner)
