"""Per-client state that outlives a connection (AWS IoT persistent sessions).

A ``Session`` holds the client's subscriptions, its unacknowledged QoS 1 messages (at most
``max_inflight``) and the QoS 1 messages waiting for a slot (``queued``, at most
``max_queued``): stored while the client was away, or sent while its in-flight window was
full. While a connection has it, ``owner`` is that connection's protocol and ``link`` the
outlet deliveries are written to; both are None while the client is away. Pure data:
``state.py`` owns every session and changes them.

After a reconnect the stored messages (``redeliver``: in-flight ones again, with DUP;
then the first ``stored`` entries of ``queued``) go out at AWS's resend rate, paced by the
broker's timer (``BrokerState.resend_next``); what was queued behind them follows as
PUBACKs free slots.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from emulator.broker.auth import ClientIdentity, Decision
from emulator.broker.link import Outlet
from emulator.broker.quotas import LimitLog
from emulator.messages import PublishProperties


class Owner(Protocol):
    """The connection that has a session; told when a newer connection takes it over, or
    when the broker disconnects it for not reading (``overflowed``)."""

    def taken_over(self) -> None: ...

    def overflowed(self, buffered: int) -> None: ...


@dataclass(slots=True)
class Outgoing:
    """A QoS 1 message on its way to one client."""

    topic: str
    payload: bytes
    retain: bool = False
    properties: PublishProperties | None = None  # MQTT 5, with its expiry time


@dataclass(slots=True)
class Session:
    client_id: str
    clean: bool  # dropped when its connection ends (MQTT 5: Session Expiry Interval 0)
    # filter -> subscription options: the granted QoS, with MQTT 5's No Local and Retain
    # As Published bits (``packets.py``); a shared subscription's filter is the whole
    # ``$share/<group>/<filter>``.
    subscriptions: dict[str, int] = field(default_factory=dict)
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
    # After a reconnect: packet ids to send again (DUP), and how many of the first
    # ``queued`` messages are stored ones; both go out at the resend rate.
    redeliver: deque[int] = field(default_factory=deque)
    stored: int = 0
    # The resend timer stopped on a full in-flight window; a PUBACK restarts it.
    resend_waiting: bool = False
    # Bytes of the messages queued while connected (its window full): with what its link
    # has not sent, what the client is behind by (``client_buffer_bytes``).
    backlog: int = 0
    queue_full: LimitLog = field(default_factory=LimitLog)  # new QoS 1 messages dropped
    # The connection's MQTT version (4: 3.1.1, 5) and what an MQTT 5 client asked for in
    # its CONNECT: its in-flight window (Receive Maximum, under AWS's), the largest packet
    # it takes, how many topic aliases the broker may give it (and those given, per
    # connection), and the session's expiry in seconds (None: the configured default).
    protocol: int = 4
    max_inflight: int = 100
    max_packet: int | None = None
    alias_max: int = 0
    aliases: dict[str, int] = field(default_factory=dict)
    expiry: float | None = None

    def allocate_packet_id(self) -> int:
        """A free packet id; the in-flight window (at most 65535) guarantees one."""
        for _ in range(65535):
            self.next_packet_id = self.next_packet_id % 65535 + 1
            if self.next_packet_id not in self.inflight:
                return self.next_packet_id
        raise OverflowError("no free packet identifier")
