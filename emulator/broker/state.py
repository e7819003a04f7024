"""The broker's state, with one owner: sessions, subscriptions, retained messages.

Theory of operation
-------------------
``BrokerState`` is the only code that changes the session table, the subscription trie
and the retained store; connections (``protocol.py``) ask it to. It is pure: no clock, no
I/O, no asyncio. Time comes in as an argument; the only side effect is ``Outlet.write``
on the links of connected subscribers, because a message fans out to many clients and the
hot path cannot afford to return one list per delivery.

- **Sessions** are keyed by client ID. ``take_over`` detaches the session a connected
  client ID holds (AWS: the new connection is accepted and the old one disconnected);
  ``attach`` then resumes a persistent session or starts a new one; ``detach`` at the end
  of a connection drops a clean session or keeps a persistent one offline, counting its
  absences so that the driver's expiry timer, when it fires, can tell whether the absence
  it was started for is still the current one (``expire``).
- **Subscriptions** live in a ``TopicTrie`` (client ID -> granted QoS), mirrored in each
  session so that a session's filters can be removed without a scan.
- **Delivery** (``deliver``): one delivery per client at the highest QoS among its matching
  subscriptions; QoS 0 bytes are encoded once per message; QoS 1 gets a packet id and is
  tracked in the session until PUBACK; an offline persistent session queues QoS 1
  (bounded). The policy's ``iot:Receive`` is checked per client and topic, cached.
- **Lifecycle version numbers** (``next_version``) increase per client ID across connections.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from emulator.broker.auth import ALLOW, Authorizer, ClientIdentity, Decision
from emulator.broker.codec import encode_publish
from emulator.broker.link import Outlet
from emulator.broker.sessions import MAX_QUEUED, Outgoing, Owner, Session
from emulator.messages import InboundMessage
from emulator.topics import TopicTrie

log = logging.getLogger(__name__)

# A subscriber whose socket buffer holds more than this stops receiving QoS 0 messages
# until it catches up (QoS 1 messages are still tracked and redelivered on reconnect).
SLOW_CONSUMER_BYTES = 16 * 1024 * 1024
VERSIONS_KEPT = 10_000  # client IDs whose lifecycle version number is remembered
RECEIVE_DECISIONS_KEPT = 4096  # cached iot:Receive decisions per session


@dataclass(frozen=True, slots=True)
class RetainedMessage:
    topic: str
    payload: bytes
    qos: int
    last_modified_ms: int


@dataclass(frozen=True, slots=True)
class TakenOver:
    """What a newer connection took over from a connected client ID: the old connection
    (to close) and its session's identifiers as they were (for its ``disconnected`` event)."""

    link: Outlet
    owner: Owner
    session_id: str
    principal: str
    version: int


class BrokerState:
    """Sessions, the subscription trie and the retained store (see the module docstring)."""

    def __init__(self, authorizer: Authorizer | None = None) -> None:
        self.sessions: dict[str, Session] = {}
        self.subscriptions: TopicTrie[str, int] = TopicTrie()
        self.retained: dict[str, RetainedMessage] = {}
        self.authorizer = authorizer
        self._versions: dict[str, int] = {}

    # -- authorization -----------------------------------------------------------------
    def set_authorizer(self, authorizer: Authorizer | None) -> None:
        """New policies (hot reload): cached Receive decisions are dropped; subscriptions
        stay, as on AWS, where a policy change applies to messages from then on."""
        self.authorizer = authorizer
        for session in self.sessions.values():
            session.receive_cache.clear()

    def authorize(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        if self.authorizer is None:
            return ALLOW
        decision = self.authorizer.check(identity, action, resource)
        if not decision.allowed:
            log.warning(
                "denied %s on %s for client %s: %s",
                action,
                resource,
                identity.client_id,
                decision.reason,
            )
        return decision

    def may_receive(self, session: Session, topic: str) -> bool:
        if self.authorizer is None or session.identity is None:
            return True
        decision = session.receive_cache.get(topic)
        if decision is None:
            decision = self.authorize(session.identity, "iot:Receive", topic)
            if len(session.receive_cache) > RECEIVE_DECISIONS_KEPT:
                session.receive_cache.clear()
            session.receive_cache[topic] = decision
        return decision.allowed

    # -- sessions ----------------------------------------------------------------------
    def take_over(self, client_id: str) -> TakenOver | None:
        """Detach the session a connected ``client_id`` holds, for a newer connection."""
        old = self.sessions.get(client_id)
        if old is None or old.owner is None or old.link is None:
            return None
        principal = old.identity.principal if old.identity else "anonymous"
        taken = TakenOver(old.link, old.owner, old.session_id, principal, old.version)
        old.owner = None
        old.link = None
        if old.clean:
            self.drop(old)
        return taken

    def attach(
        self,
        client_id: str,
        clean: bool,
        owner: Owner,
        link: Outlet,
        identity: ClientIdentity,
        session_id: str,
    ) -> tuple[Session, bool]:
        """The session of a new connection and whether it was present (CONNACK's flag):
        a persistent session resumes; ``clean`` drops whatever was stored."""
        session = self.sessions.get(client_id)
        present = False
        if session is not None:
            if clean:
                self.drop(session)
                session = None
            else:
                present = True
        if session is None:
            session = Session(client_id, clean)
            self.sessions[client_id] = session
        session.clean = clean
        session.owner = owner
        session.link = link
        session.identity = identity
        session.receive_cache.clear()
        session.session_id = session_id
        session.version = self.next_version(client_id)
        return session, present

    def detach(self, session: Session, owner: Owner) -> bool:
        """The end of ``owner``'s connection. True when the session stays, offline: the
        caller starts its expiry timer (AWS: the timer starts at the disconnect)."""
        if session.owner is not owner:
            return False  # taken over: the newer connection has it
        session.owner = None
        session.link = None
        if session.clean:
            self.drop(session)
            return False
        session.absences += 1
        return True

    def expire(self, client_id: str, absences: int) -> Session | None:
        """An expiry timer fired: drop the session if it is still away since that absence."""
        session = self.sessions.get(client_id)
        if session is None or session.owner is not None or session.absences != absences:
            return None
        log.info(
            "persistent session of %s expired; %d stored messages discarded",
            client_id,
            len(session.queued) + len(session.inflight),
        )
        self.drop(session)
        return session

    def drop(self, session: Session) -> None:
        for topic_filter in session.subscriptions:
            self.subscriptions.remove(topic_filter, session.client_id)
        session.subscriptions.clear()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def next_version(self, client_id: str) -> int:
        """The lifecycle ``versionNumber``: per client ID, increasing across connections.
        Remembered for the last VERSIONS_KEPT client IDs, so unique IDs (a fresh one per
        page load) do not grow memory without bound."""
        versions = self._versions
        version = versions.pop(client_id, -1) + 1  # re-inserted last: most recent
        versions[client_id] = version
        if len(versions) > VERSIONS_KEPT:
            del versions[next(iter(versions))]
        return version

    # -- subscriptions -----------------------------------------------------------------
    def subscribe(self, session: Session, topic_filter: str, qos: int) -> None:
        session.subscriptions[topic_filter] = qos
        self.subscriptions.add(topic_filter, session.client_id, qos)

    def unsubscribe(self, session: Session, topic_filter: str) -> None:
        if session.subscriptions.pop(topic_filter, None) is not None:
            self.subscriptions.remove(topic_filter, session.client_id)

    # -- retained messages -------------------------------------------------------------
    def retain(self, message: InboundMessage, now_ms: int) -> None:
        if message.payload:
            self.retained[message.topic] = RetainedMessage(
                message.topic, message.payload, message.qos, message.timestamp_ms or now_ms
            )
        else:
            # AWS: a 0-byte retained publish deletes the retained message; it is still
            # delivered to current subscribers, and not retained itself.
            self.retained.pop(message.topic, None)

    def retained_for(self, session: Session, topic_filter: str, granted: int) -> bytes | None:
        """The PUBLISH of the message retained on a new subscription's topic, if any. AWS:
        a retained message is sent on subscription only when the filter is the exact topic
        (no wildcards); it arrives with the RETAIN flag set."""
        if "+" in topic_filter or "#" in topic_filter:
            return None
        retained = self.retained.get(topic_filter)
        if retained is None or not self.may_receive(session, topic_filter):
            return None
        topic = retained.topic.encode()
        if min(granted, retained.qos):
            packet_id = session.allocate_packet_id()
            session.inflight[packet_id] = Outgoing(retained.topic, retained.payload, True)
            return encode_publish(topic, retained.payload, 1, True, packet_id)
        return encode_publish(topic, retained.payload, 0, True)

    # -- delivery ----------------------------------------------------------------------
    def deliver(self, topic: str, payload: bytes, qos: int, matches: list[tuple[str, int]]) -> None:
        """Write the message to every matching subscriber (``matches`` from the trie)."""
        # One delivery per client, at the highest QoS among its matching subscriptions.
        targets: dict[str, int] = {}
        for client_id, sub_qos in matches:
            granted = sub_qos if sub_qos < qos else qos
            if targets.get(client_id, -1) < granted:
                targets[client_id] = granted
        topic_bytes = topic.encode()
        qos0_bytes: bytes | None = None
        sessions = self.sessions
        for client_id, granted in targets.items():
            session = sessions.get(client_id)
            if session is None:
                continue
            link = session.link
            if link is None:
                if granted and not session.clean:
                    if len(session.queued) >= MAX_QUEUED:
                        session.queued.popleft()
                        log.warning("dropped the oldest stored message of %s", client_id)
                    session.queued.append(Outgoing(topic, payload))
                continue
            if not self.may_receive(session, topic):
                continue
            if granted == 0:
                if link.buffered() > SLOW_CONSUMER_BYTES:
                    session.dropped_qos0 += 1
                    if session.dropped_qos0 in (1, 1000, 100000):
                        log.warning(
                            "client %s is not reading; %d QoS 0 messages dropped",
                            client_id,
                            session.dropped_qos0,
                        )
                    continue
                if qos0_bytes is None:
                    qos0_bytes = encode_publish(topic_bytes, payload, 0, False)
                link.write(qos0_bytes)
            else:
                packet_id = session.allocate_packet_id()
                session.inflight[packet_id] = Outgoing(topic, payload)
                link.write(encode_publish(topic_bytes, payload, 1, False, packet_id))

    def stored(self, session: Session) -> list[bytes]:
        """On reconnect: the unacknowledged QoS 1 messages again (DUP set), then the
        messages stored while the client was away, now in flight."""
        out = [
            encode_publish(o.topic.encode(), o.payload, 1, o.retain, packet_id, True)
            for packet_id, o in session.inflight.items()
        ]
        while session.queued:
            o = session.queued.popleft()
            packet_id = session.allocate_packet_id()
            session.inflight[packet_id] = o
            out.append(encode_publish(o.topic.encode(), o.payload, 1, o.retain, packet_id))
        return out

    def acknowledged(self, session: Session, packet_id: int) -> None:
        session.inflight.pop(packet_id, None)
