"""Per-client state that outlives a connection (AWS IoT persistent sessions).

A ``Session`` holds the client's subscriptions, its unacknowledged QoS 1 messages and the
QoS 1 messages queued while it was away. While a connection has it, ``owner`` is that
connection's protocol and ``link`` the outlet deliveries are written to; both are None
while the client is away. Pure data: ``state.py`` owns every session and changes them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from emulator.broker.auth import ClientIdentity, Decision
from emulator.broker.link import Outlet

MAX_QUEUED = 1000  # stored QoS 1 messages per offline session; older ones are dropped (logged)


class Owner(Protocol):
    """The connection that has a session; told when a newer connection takes it over."""

    def taken_over(self) -> None: ...


@dataclass(slots=True)
class Outgoing:
    """A QoS 1 message on its way to one client."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass(slots=True)
class Session:
    client_id: str
    clean: bool
    subscriptions: dict[str, int] = field(default_factory=dict)  # filter -> granted QoS
    inflight: dict[int, Outgoing] = field(default_factory=dict)  # packet id -> message
    queued: deque[Outgoing] = field(default_factory=deque)
    next_packet_id: int = 0
    owner: Owner | None = None
    link: Outlet | None = None
    identity: ClientIdentity | None = None
    session_id: str = ""
    version: int = 0
    # Counts the times the session went offline: an expiry timer started for an earlier
    # absence finds a newer number and does nothing.
    absences: int = 0
    receive_cache: dict[str, Decision] = field(default_factory=dict)
    dropped_qos0: int = 0

    def allocate_packet_id(self) -> int:
        for _ in range(65535):
            self.next_packet_id = self.next_packet_id % 65535 + 1
            if self.next_packet_id not in self.inflight:
                return self.next_packet_id
        raise OverflowError("no free packet identifier")
