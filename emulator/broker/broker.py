"""The AWS IoT message broker, built on amqtt.

Theory of operation
-------------------
amqtt's ``Broker`` provides the listeners (its TCP server and its "external" listener,
which the aiohttp WebSocket endpoint feeds), the plugin manager and the packet classes
used to decode CONNECT/SUBSCRIBE/UNSUBSCRIBE. ``IoTBroker`` overrides the per-connection
entry point (``_client_connected``) with ``ClientConnection`` (``connection.py``) and
replaces amqtt's session table, subscription scan, broadcast queue and retained store with
structures that follow AWS IoT (see docs/broker.md for each amqtt gap and why):

- subscriptions live in a ``TopicTrie`` (client ID -> granted QoS);
- ``publish()`` delivers synchronously: one trie lookup, the PUBLISH bytes encoded once per
  QoS 0 message, written to each subscriber's link (coalesced per loop turn); no task or
  queue per message;
- then the message goes to ``on_message`` (the rules engine), as every message published
  to AWS IoT does, including lifecycle events, will messages and data-plane publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker

from emulator.broker.auth import ALLOW, Authorizer, ClientIdentity, Decision
from emulator.broker.codec import encode_publish
from emulator.broker.sessions import MAX_QUEUED, Outgoing, Session
from emulator.config import Config
from emulator.messages import InboundMessage
from emulator.topics import TopicTrie
from emulator.transport.links import Link, TcpLink

log = logging.getLogger(__name__)

OnMessage = Callable[[InboundMessage], None]

# A subscriber whose socket buffer holds more than this stops receiving QoS 0 messages
# until it catches up (QoS 1 messages are still tracked and redelivered on reconnect).
SLOW_CONSUMER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetainedMessage:
    topic: str
    payload: bytes
    qos: int
    last_modified_ms: int


def now_ms() -> int:
    return int(time.time() * 1000)


VERSIONS_KEPT = 10_000


class IoTBroker(Broker):
    """amqtt broker with AWS IoT semantics and a fast delivery path."""

    def __init__(
        self,
        config: Config,
        on_message: OnMessage | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        super().__init__(
            {
                "listeners": {
                    "default": {"type": "tcp", "bind": f"{config.host}:{config.mqtt_port}"},
                    "ws": {"type": "external"},
                },
                # amqtt's default plugins log every packet and publish $SYS topics, which AWS
                # IoT does not have; authentication and authorization are ours.
                "plugins": {},
            }
        )
        self.settings = config
        self.on_message = on_message
        self.authorizer = authorizer
        self.topic_subscriptions: TopicTrie[str, int] = TopicTrie()
        self.iot_sessions: dict[str, Session] = {}
        self.retained_store: dict[str, RetainedMessage] = {}
        self.tcp_port = 0
        self._versions: dict[str, int] = {}
        self._connections: set[asyncio.Task[Any]] = set()
        # (at most this many connections, future) for wait_connections()
        self._count_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.published = 0
        self.delivered = 0
        # Called with the client ID when a persistent session expires (tests, /health).
        self.expiry_listeners: list[Callable[[str], None]] = []

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await super().start()
        server = self._servers["default"].instance
        sockets = getattr(server, "sockets", None) or []
        self.tcp_port = int(sockets[0].getsockname()[1]) if sockets else self.settings.mqtt_port

    async def stop(self) -> None:
        for session in list(self.iot_sessions.values()):
            if session.expiry is not None:
                session.expiry.cancel()
            if session.link is not None:
                session.link.close()
        with contextlib.suppress(Exception):
            await self.shutdown()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=5)

    def set_on_message(self, on_message: OnMessage | None) -> None:
        self.on_message = on_message

    def set_authorizer(self, authorizer: Authorizer | None) -> None:
        """New policies (hot reload): cached Receive decisions are dropped; subscriptions
        stay, as on AWS, where a policy change applies to messages from then on."""
        self.authorizer = authorizer
        for session in self.iot_sessions.values():
            session.receive_cache.clear()

    # -- connections -------------------------------------------------------------------
    async def _client_connected(
        self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter
    ) -> None:
        """amqtt's per-connection entry point (TCP listener); replaced by ours."""
        if isinstance(reader, StreamReaderAdapter) and isinstance(writer, StreamWriterAdapter):
            link: Link = TcpLink(reader._reader, writer._writer)
        else:  # pragma: no cover - we only register TCP and our own WebSocket bridge
            raise TypeError(f"unsupported listener {listener_name}")
        await self.serve_link(link)

    async def serve_link(self, link: Link) -> None:
        """Run one client connection to its end; never raises (a client can't kill us)."""
        from emulator.broker.connection import ClientConnection

        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await ClientConnection(self, link).run()
        except asyncio.CancelledError:
            link.close()
        except Exception:
            log.exception("connection from %s:%s failed", link.peer_ip, link.peer_port)
            link.close()
        finally:
            if task is not None:
                self._connections.discard(task)
                if self._count_waiters:
                    self._wake_count_waiters()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def wait_connections(self, at_most: int = 0) -> None:
        """Until no more than ``at_most`` connection tasks are left (tests: nothing leaked)."""
        if len(self._connections) <= at_most:
            return
        future = asyncio.get_running_loop().create_future()
        self._count_waiters.append((at_most, future))
        await future

    def _wake_count_waiters(self) -> None:
        count = len(self._connections)
        keep = []
        for at_most, future in self._count_waiters:
            if count <= at_most:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((at_most, future))
        self._count_waiters = keep

    # -- authorization -----------------------------------------------------------------
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

    def _may_receive(self, session: Session, topic: str) -> bool:
        if self.authorizer is None or session.identity is None:
            return True
        decision = session.receive_cache.get(topic)
        if decision is None:
            decision = self.authorize(session.identity, "iot:Receive", topic)
            if len(session.receive_cache) > 4096:
                session.receive_cache.clear()
            session.receive_cache[topic] = decision
        return decision.allowed

    # -- sessions ----------------------------------------------------------------------
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

    def drop_session(self, session: Session) -> None:
        for topic_filter in session.subscriptions:
            self.topic_subscriptions.remove(topic_filter, session.client_id)
        session.subscriptions.clear()
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        if self.iot_sessions.get(session.client_id) is session:
            del self.iot_sessions[session.client_id]

    def schedule_expiry(self, session: Session) -> None:
        """AWS: the expiry timer starts when the broker sees the client disconnect."""
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(self.settings.session_expiry, self._expire, session)

    def _expire(self, session: Session) -> None:
        if session.link is None and self.iot_sessions.get(session.client_id) is session:
            log.info(
                "persistent session of %s expired; %d stored messages discarded",
                session.client_id,
                len(session.queued) + len(session.inflight),
            )
            session.expiry = None
            self.drop_session(session)
            for listener in self.expiry_listeners:
                listener(session.client_id)

    # -- delivery ----------------------------------------------------------------------
    def publish(self, message: InboundMessage) -> None:
        """Deliver to subscribers, keep it if retained, then hand it to the rules engine."""
        self.published += 1
        topic = message.topic
        if message.retain:
            self._retain(message)
        matches = self.topic_subscriptions.match(topic)
        if matches:
            self._deliver(topic, message.payload, message.qos, matches)
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception:
                log.exception("rules engine failed on a message on %s", topic)

    def _retain(self, message: InboundMessage) -> None:
        if message.payload:
            self.retained_store[message.topic] = RetainedMessage(
                message.topic, message.payload, message.qos, message.timestamp_ms or now_ms()
            )
        else:
            # AWS: a 0-byte retained publish deletes the retained message; it is still
            # delivered to current subscribers, and not retained itself.
            self.retained_store.pop(message.topic, None)

    def _deliver(
        self, topic: str, payload: bytes, qos: int, matches: list[tuple[str, int]]
    ) -> None:
        # One delivery per client, at the highest QoS among its matching subscriptions.
        targets: dict[str, int] = {}
        for client_id, sub_qos in matches:
            granted = sub_qos if sub_qos < qos else qos
            if targets.get(client_id, -1) < granted:
                targets[client_id] = granted
        topic_bytes = topic.encode()
        qos0_bytes: bytes | None = None
        sessions = self.iot_sessions
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
            if not self._may_receive(session, topic):
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
            self.delivered += 1

    def send_stored(self, session: Session) -> None:
        """On reconnect: redeliver unacknowledged QoS 1 messages (DUP set), then the
        messages stored while the client was away."""
        link = session.link
        if link is None:
            return
        for packet_id, out in session.inflight.items():
            link.write(
                encode_publish(out.topic.encode(), out.payload, 1, out.retain, packet_id, True)
            )
        while session.queued:
            out = session.queued.popleft()
            packet_id = session.allocate_packet_id()
            session.inflight[packet_id] = out
            link.write(encode_publish(out.topic.encode(), out.payload, 1, out.retain, packet_id))

    def send_retained(self, session: Session, topic_filter: str, granted: int) -> None:
        """AWS: a retained message is sent on subscription only when the filter is the
        exact topic (no wildcards); it arrives with the RETAIN flag set."""
        if "+" in topic_filter or "#" in topic_filter:
            return
        retained = self.retained_store.get(topic_filter)
        link = session.link
        if retained is None or link is None or not self._may_receive(session, topic_filter):
            return
        qos = min(granted, retained.qos)
        if qos:
            packet_id = session.allocate_packet_id()
            session.inflight[packet_id] = Outgoing(retained.topic, retained.payload, True)
            link.write(
                encode_publish(retained.topic.encode(), retained.payload, 1, True, packet_id)
            )
        else:
            link.write(encode_publish(retained.topic.encode(), retained.payload, 0, True))

    # -- retained-message API (IoT data plane) -----------------------------------------
    def get_retained(self, topic: str) -> RetainedMessage | None:
        return self.retained_store.get(topic)

    def list_retained(self) -> list[RetainedMessage]:
        return sorted(self.retained_store.values(), key=lambda r: r.topic)

    # -- lifecycle events --------------------------------------------------------------
    def emit_event(self, topic: str, payload: bytes) -> None:
        self.publish(InboundMessage(topic=topic, payload=payload, qos=0, timestamp_ms=now_ms()))
