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
  tracked in the session until PUBACK, at most ``max_inflight`` at a time (AWS's in-flight
  quota); beyond it, and while an offline persistent session is away, QoS 1 waits in the
  session's queue, at most ``max_queued`` (AWS drops what exceeds it: the new messages).
  A PUBACK frees a slot for the next queued message. A client with more than
  ``client_buffer_bytes`` written and not yet sent is disconnected (``Owner.overflowed``,
  its link aborted); its QoS 1 messages stay in its session. Whatever one client's state
  does, ``deliver`` carries on with the others. The policy's ``iot:Receive`` is checked
  per client and topic, cached.
- **Stored messages** after a reconnect go out one per ``resend_next`` call; the broker's
  timer calls it at AWS's rate (10 per second).
- **CONNECT rate**: ``connect_allowed`` keeps the time of each client ID's last accepted
  CONNECT (bounded, like the version numbers).
- **Lifecycle version numbers** (``next_version``) increase per client ID across connections.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from emulator.broker import codec5
from emulator.broker.auth import ALLOW, Authorizer, ClientIdentity, Decision
from emulator.broker.codec import encode_publish
from emulator.broker.link import Outlet
from emulator.broker.packets import MQTT5, NO_LOCAL, QOS_MASK, RETAIN_AS_PUBLISHED
from emulator.broker.quotas import BrokerQuotas, LimitLog
from emulator.broker.sessions import Outgoing, Owner, Session
from emulator.messages import InboundMessage, PublishProperties
from emulator.topics import TopicTrie, shared_subscription

log = logging.getLogger(__name__)

VERSIONS_KEPT = 10_000  # client IDs whose lifecycle version number is remembered
RECEIVE_DECISIONS_KEPT = 4096  # cached iot:Receive decisions per session


@dataclass(frozen=True, slots=True)
class RetainedMessage:
    topic: str
    payload: bytes
    qos: int
    last_modified_ms: int
    properties: PublishProperties | None = None


class SharedGroup:
    """The members of one shared subscription (``$share/<group>/<filter>``): each message
    goes to one of them (AWS: "a random member"; here each connected member in turn, so
    the load is spread and tests can count on it), preferring connected members; with none
    connected, a QoS 1 message waits in a persistent member's session."""

    __slots__ = ("members", "name", "next")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, int] = {}  # client ID -> subscription options
        self.next = 0

    def pick(self, sessions: dict[str, Session]) -> tuple[str, int] | None:
        members = list(self.members.items())
        count = len(members)
        offline: tuple[str, int] | None = None
        for step in range(count):
            client_id, options = members[(self.next + step) % count]
            session = sessions.get(client_id)
            if session is None:
                continue
            if session.link is not None:
                self.next = (self.next + step + 1) % count
                return client_id, options
            if offline is None and not session.clean:
                offline = client_id, options
        return offline


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

    def __init__(
        self, authorizer: Authorizer | None = None, quotas: BrokerQuotas | None = None
    ) -> None:
        self.sessions: dict[str, Session] = {}
        self.subscriptions: TopicTrie[str, int] = TopicTrie()
        self.retained: dict[str, RetainedMessage] = {}
        # Shared subscriptions: the filter's trie holds each group under its name.
        self.shared: TopicTrie[str, SharedGroup] = TopicTrie()
        self._groups: dict[str, SharedGroup] = {}  # "$share/<group>/<filter>" -> group
        self.authorizer = authorizer
        self.quotas = quotas = quotas or BrokerQuotas()
        # Read by deliver() for every message: one attribute each.
        self._buffer_cap = quotas.client_buffer_bytes
        self._versions: dict[str, int] = {}
        self._connects: dict[str, int] = {}  # client ID -> ms of its last accepted CONNECT
        self._connects_refused: dict[str, LimitLog] = {}  # client ID -> its refusals' log
        # Bumped when what outlives a restart changes (retained messages, persistent
        # sessions, their stored messages): the periodic save skips an unchanged state.
        self.revision = 0

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
                "denied %s on %r for client %r: %r",
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
    def connect_allowed(self, client_id: str, now: int) -> bool:
        """AWS: one CONNECT per second per client ID. Only accepted CONNECTs count, so a
        client retrying too fast gets in once it slows down."""
        connects = self._connects
        last = connects.get(client_id)
        if last is not None and 0 <= now - last < self.quotas.connect_interval_ms:
            refusals = self._connects_refused.get(client_id)
            if refusals is None:
                if len(self._connects_refused) >= VERSIONS_KEPT:
                    self._connects_refused.clear()
                refusals = self._connects_refused[client_id] = LimitLog()
            refused = refusals.hit(now)
            if refused:
                log.warning(
                    "client ID %r is over connect_rate (one CONNECT per %d ms); "
                    "%d connections refused",
                    client_id,
                    self.quotas.connect_interval_ms,
                    refused,
                )
            return False
        connects.pop(client_id, None)  # re-inserted last: most recent
        connects[client_id] = now
        if len(connects) > VERSIONS_KEPT:
            del connects[next(iter(connects))]
        return True

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
        protocol: int = 4,
        keep: bool | None = None,
    ) -> tuple[Session, bool]:
        """The session of a new connection and whether it was present (CONNACK's flag):
        a persistent session resumes; ``clean`` (MQTT 5: Clean Start) drops whatever was
        stored. ``keep``: MQTT 5's Session Expiry Interval over 0, whether the session
        outlives the connection (MQTT 3.1.1: not ``clean``). AWS: "a persistent session
        cannot be resumed under the other version"; it is started anew."""
        session = self.sessions.get(client_id)
        present = False
        if session is not None:
            if clean or session.protocol != protocol:
                self.drop(session)
                session = None
            else:
                present = True
        if session is None:
            session = Session(client_id, clean)
            self.sessions[client_id] = session
        session.clean = clean if keep is None else not keep
        session.protocol = protocol
        session.aliases = {}
        session.owner = owner
        session.link = link
        session.identity = identity
        session.receive_cache.clear()
        session.session_id = session_id
        session.version = self.next_version(client_id)
        # What the session stored goes out again at the resend rate (``resend_next``).
        session.redeliver = deque(session.inflight)
        session.stored = len(session.queued)
        session.resend_waiting = False
        session.backlog = 0
        session.max_inflight = self.quotas.max_inflight
        self.revision += 1
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
        self.revision += 1
        return True

    def expire(self, client_id: str, absences: int) -> Session | None:
        """An expiry timer fired: drop the session if it is still away since that absence."""
        session = self.sessions.get(client_id)
        if session is None or session.owner is not None or session.absences != absences:
            return None
        log.info(
            "persistent session of %r expired; %d stored messages discarded",
            client_id,
            len(session.queued) + len(session.inflight),
        )
        self.drop(session)
        return session

    def drop(self, session: Session) -> None:
        self.revision += 1
        for topic_filter in session.subscriptions:
            self._remove(topic_filter, session.client_id)
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
    def subscribe(self, session: Session, topic_filter: str, options: int) -> None:
        """``options``: the granted QoS, with MQTT 5's No Local and Retain As Published
        bits (Retain Handling is the protocol's, at SUBSCRIBE). A ``$share/<group>/...``
        filter joins its group."""
        options &= QOS_MASK | NO_LOCAL | RETAIN_AS_PUBLISHED
        if session.protocol == 5:
            options |= MQTT5
        session.subscriptions[topic_filter] = options
        shared = shared_subscription(topic_filter)
        if shared is None:
            self.subscriptions.add(topic_filter, session.client_id, options)
        else:
            group = self._groups.get(topic_filter)
            if group is None:
                group = self._groups[topic_filter] = SharedGroup(shared[0])
                self.shared.add(shared[1], topic_filter, group)
            group.members[session.client_id] = options
        self.revision += 1

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        """False: the session had no such subscription."""
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        self._remove(topic_filter, session.client_id)
        self.revision += 1
        return True

    def _remove(self, topic_filter: str, client_id: str) -> None:
        group = self._groups.get(topic_filter)
        if group is None:
            self.subscriptions.remove(topic_filter, client_id)
            return
        group.members.pop(client_id, None)
        if not group.members:
            del self._groups[topic_filter]
            shared = shared_subscription(topic_filter)
            assert shared is not None
            self.shared.remove(shared[1], topic_filter)

    def group_full(self, topic_filter: str) -> bool:
        """A shared subscription group at AWS's quota of members (``max_group_members``)."""
        group = self._groups.get(topic_filter)
        return group is not None and len(group.members) >= self.quotas.max_group_members

    @property
    def has_shared(self) -> bool:
        return bool(self._groups)

    # -- retained messages -------------------------------------------------------------
    def retain(self, message: InboundMessage, now_ms: int) -> None:
        self.revision += 1
        if message.payload:
            self.retained[message.topic] = RetainedMessage(
                message.topic,
                message.payload,
                message.qos,
                message.timestamp_ms or now_ms,
                message.properties,
            )
        else:
            # AWS: a 0-byte retained publish deletes the retained message; it is still
            # delivered to current subscribers, and not retained itself.
            self.retained.pop(message.topic, None)

    def retained_for(
        self, session: Session, topic_filter: str, granted: int, now: int = 0
    ) -> bytes | None:
        """The PUBLISH of the message retained on a new subscription's topic, if any. AWS:
        a retained message is sent on subscription only when the filter is the exact topic
        (no wildcards; a shared subscription gets none); it arrives with the RETAIN flag
        set. One whose MQTT 5 message expiry has passed is deleted instead."""
        if "+" in topic_filter or "#" in topic_filter:
            return None
        retained = self.retained.get(topic_filter)
        if retained is None or not self.may_receive(session, topic_filter):
            return None
        props = retained.properties
        if props is not None and props.expired(now):
            del self.retained[topic_filter]
            self.revision += 1
            return None
        o = Outgoing(retained.topic, retained.payload, True, props)
        if not min(granted & QOS_MASK, retained.qos):
            return self._encode(session, o, 0, 0, False, now)
        # QoS 1 as ``_deliver5`` sends it: within the in-flight window (MQTT 5: the
        # client's Receive Maximum), else queued for a PUBACK to free a slot; in flight
        # only if sent (not over the client's Maximum Packet Size).
        if len(session.inflight) < session.max_inflight and len(session.queued) <= session.stored:
            packet_id = session.allocate_packet_id()
            data = self._encode(session, o, 1, packet_id, False, now)
            if data is not None:
                session.inflight[packet_id] = o
            return data
        if self._queue(session, o, now):
            session.backlog += len(o.payload)
        return None

    def _encode(
        self, session: Session, o: Outgoing, qos: int, packet_id: int, dup: bool, now: int
    ) -> bytes | None:
        """One client's PUBLISH of ``o``: MQTT 3.1.1's, or MQTT 5's with the message's
        properties, what is left of its expiry and a topic alias when the client takes
        them. None: too big for the client's Maximum Packet Size (MQTT 5: not sent)."""
        topic = o.topic
        if session.protocol != 5:
            return encode_publish(topic.encode(), o.payload, qos, o.retain, packet_id, dup)
        alias = 0
        topic_bytes = topic.encode()
        new_alias = False
        if session.alias_max:
            alias = session.aliases.get(topic, 0)
            if alias:
                topic_bytes = b""
            elif len(session.aliases) < session.alias_max:
                alias = session.aliases[topic] = len(session.aliases) + 1
                new_alias = True
        data = codec5.encode_publish(
            topic_bytes,
            o.payload,
            qos,
            o.retain,
            packet_id,
            dup,
            codec5.publish_properties(o.properties, now, alias),
        )
        max_packet = session.max_packet
        if max_packet is not None and len(data) > max_packet:
            if new_alias:
                del session.aliases[topic]
            return None
        return data

    # -- delivery ----------------------------------------------------------------------
    def deliver(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        matches: list[tuple[str, int]],
        now: int = 0,
        message: InboundMessage | None = None,
    ) -> None:
        """Write the message to every matching subscriber (``matches`` from the trie) and
        to one member of each matching shared subscription group. ``now`` (ms) times the
        log lines of limits hit and an MQTT 5 message's remaining expiry; ``message``, when
        given, is the published message: its publisher (No Local), RETAIN flag (Retain As
        Published) and MQTT 5 properties."""
        props = None
        if message is not None:
            props = message.properties
            if props is not None and props.expired(now):
                return
        # One delivery per client, at the highest QoS among its matching subscriptions.
        # An MQTT 5 subscription's value is over 3 (its MQTT5 bit, packets.py): only then
        # are its options looked at, and the delivery takes the MQTT 5 branch below.
        targets: dict[str, int] = {}
        for client_id, sub in matches:
            if sub > 3:  # MQTT 5 (the MQTT5 bit, 0x40): No Local, Retain As Published
                if sub & 4 and message is not None and client_id == message.client_id:
                    continue
                granted = (sub & 3 if sub & 3 < qos else qos) | 0x40
                if sub & 8 and message is not None and message.retain:
                    granted |= 8
            else:
                granted = sub if sub < qos else qos
            if targets.get(client_id, -1) < granted:
                targets[client_id] = granted
        if self._groups:
            sessions = self.sessions
            for _, group in self.shared.match(topic):
                picked = group.pick(sessions)
                if picked is None:
                    continue
                client_id, sub = picked
                granted = self._granted5(sub & ~RETAIN_AS_PUBLISHED, qos, client_id, message)
                if granted < 0:
                    continue
                if targets.get(client_id, -1) < granted:
                    targets[client_id] = granted
        topic_bytes = topic.encode()
        qos0_bytes: bytes | None = None
        qos0_bytes5: bytes | None = None  # MQTT 5, for clients without aliases or a size cap
        sessions = self.sessions
        buffer_cap = self._buffer_cap
        for client_id, granted in targets.items():
            session = sessions.get(client_id)
            if session is None:
                continue
            # One client's state never stops the delivery to the others (a try costs
            # nothing until it catches).
            try:
                link = session.link
                if link is None:
                    if granted & QOS_MASK and not session.clean:
                        self._queue(session, Outgoing(topic, payload, False, props), now)
                    continue
                if not self.may_receive(session, topic):
                    continue
                # What the client is behind by: written and not sent, and queued behind
                # its full in-flight window.
                behind = link.buffered() + session.backlog
                if behind > buffer_cap:
                    self._overflow(session, link, behind)
                    if granted & QOS_MASK and not session.clean:
                        self._queue(session, Outgoing(topic, payload, False, props), now)
                    continue
                if granted > 3:
                    if granted == MQTT5 and not session.alias_max and session.max_packet is None:
                        if qos0_bytes5 is None:
                            qos0_bytes5 = codec5.encode_publish(
                                topic_bytes,
                                payload,
                                0,
                                False,
                                0,
                                False,
                                codec5.publish_properties(props, now),
                            )
                        link.write(qos0_bytes5)
                    else:
                        self._deliver5(session, link, topic, payload, granted, props, now)
                elif granted == 0:
                    if qos0_bytes is None:
                        qos0_bytes = encode_publish(topic_bytes, payload, 0, False)
                    link.write(qos0_bytes)
                elif (
                    len(session.inflight) < session.max_inflight
                    and len(session.queued) <= session.stored
                ):
                    packet_id = session.allocate_packet_id()
                    session.inflight[packet_id] = Outgoing(topic, payload, False, props)
                    link.write(encode_publish(topic_bytes, payload, 1, False, packet_id))
                elif self._queue(session, Outgoing(topic, payload, False, props), now):
                    session.backlog += len(payload)
            except Exception:
                log.exception("delivery on %r to client %r failed", topic, client_id)

    @staticmethod
    def _granted5(sub: int, qos: int, client_id: str, message: InboundMessage | None) -> int:
        """The value a subscription with MQTT 5's options gives one delivery: the QoS, the
        RETAIN flag it keeps (Retain As Published) and the MQTT5 bit; -1 for none (No
        Local, on the publisher's own message). 3.1.1 subscribers of an MQTT 5 publisher
        never get here."""
        if message is None:
            return (sub & QOS_MASK if sub & QOS_MASK < qos else qos) | (sub & MQTT5)
        if sub & NO_LOCAL and client_id == message.client_id:
            return -1
        granted = sub & QOS_MASK if sub & QOS_MASK < qos else qos
        if message.retain:
            granted |= sub & RETAIN_AS_PUBLISHED
        return granted | (sub & MQTT5)

    def _deliver5(
        self,
        session: Session,
        link: Outlet,
        topic: str,
        payload: bytes,
        granted: int,
        props: PublishProperties | None,
        now: int,
    ) -> None:
        """One MQTT 5 client's copy (encoded for it: its topic aliases, Maximum Packet
        Size and the RETAIN flag its Retain As Published option keeps)."""
        o = Outgoing(topic, payload, bool(granted & RETAIN_AS_PUBLISHED), props)
        if not granted & QOS_MASK:
            data = self._encode(session, o, 0, 0, False, now)
            if data is not None:
                link.write(data)
        elif len(session.inflight) < session.max_inflight and len(session.queued) <= session.stored:
            packet_id = session.allocate_packet_id()
            data = self._encode(session, o, 1, packet_id, False, now)
            if data is not None:
                session.inflight[packet_id] = o
                link.write(data)
        elif self._queue(session, o, now):
            session.backlog += len(payload)

    def _queue(self, session: Session, message: Outgoing, now: int) -> bool:
        """Wait for a slot (or for the client to come back), up to ``max_queued``; AWS
        drops the messages that exceed it: the new ones (False). Logged once per interval."""
        queued = session.queued
        if len(queued) < self.quotas.max_queued:
            queued.append(message)
            self.revision += 1
            return True
        dropped = session.queue_full.hit(now)
        if dropped:
            log.warning(
                "client %r has %d QoS 1 messages waiting (max_queued_messages); "
                "%d new messages dropped",
                session.client_id,
                len(queued),
                dropped,
            )
        return False

    def _overflow(self, session: Session, link: Outlet, buffered: int) -> None:
        """The client does not read: disconnect it (its QoS 1 messages stay)."""
        log.warning(
            "client %r is %d bytes behind (not yet sent or waiting for its in-flight window), "
            "over client_buffer_kib (%d KiB); disconnecting",
            session.client_id,
            buffered,
            self.quotas.client_buffer_bytes // 1024,
        )
        session.link = None  # nothing more is written to it; the driver ends the connection
        session.backlog = 0  # what is queued is stored for its next connection
        owner = session.owner
        if owner is not None:
            owner.overflowed(buffered)
        link.abort()

    def _send_queued(self, session: Session, now: int) -> None:
        """Fill free in-flight slots from the queue (no stored messages ahead of them);
        a message whose MQTT 5 expiry has passed is dropped."""
        link = session.link
        if link is None:
            return
        queued = session.queued
        inflight = session.inflight
        max_inflight = session.max_inflight
        while queued and len(inflight) < max_inflight:
            o = queued.popleft()
            session.backlog -= len(o.payload)  # no stored message is left ahead of it
            self._send(session, link, o, now)

    def _send(self, session: Session, link: Outlet, o: Outgoing, now: int) -> bool:
        """A QoS 1 message from the queue, unless it expired or is too big for the client."""
        props = o.properties
        if props is not None and props.expired(now):
            return False
        packet_id = session.allocate_packet_id()
        data = self._encode(session, o, 1, packet_id, False, now)
        if data is None:
            return False
        inflight = session.inflight
        inflight[packet_id] = o
        link.write(data)
        return True

    def resend_next(self, session: Session, now: int = 0) -> bool:
        """Send one stored message (the broker's timer calls this at the resend rate):
        first the unacknowledged ones again, with DUP, then those stored while away. True:
        call again; False: done, or waiting for a PUBACK to free a slot (``acknowledged``
        says when to start again)."""
        link = session.link
        if link is None:
            return False
        inflight = session.inflight
        redeliver = session.redeliver
        while redeliver:
            packet_id = redeliver.popleft()
            o = inflight.get(packet_id)
            if o is not None:  # not acknowledged in the meantime
                data = self._encode(session, o, 1, packet_id, True, now)
                if data is None:
                    del inflight[packet_id]
                else:
                    link.write(data)
                return bool(redeliver) or session.stored > 0
        if session.stored <= 0:
            self._send_queued(session, now)
            return False
        if len(inflight) >= session.max_inflight:
            session.resend_waiting = True
            return False
        o = session.queued.popleft()
        session.stored -= 1
        self._send(session, link, o, now)
        if session.stored:
            return True
        self._send_queued(session, now)  # what waited behind the stored messages
        return False

    def acknowledged(self, session: Session, packet_id: int, now: int = 0) -> bool:
        """A PUBACK. True: the resend of stored messages waited for this slot; the caller
        starts its timer again."""
        if session.inflight.pop(packet_id, None) is None or not session.queued:
            return False
        if session.stored:
            if session.resend_waiting:
                session.resend_waiting = False
                return True
            return False
        self._send_queued(session, now)
        return False
