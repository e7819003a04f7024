"""The AWS IoT message broker: the one ``BrokerState``, its connections and its timers.

Theory of operation
-------------------
``IoTBroker`` is the I/O shell around the pure parts: ``BrokerState`` (sessions, the
subscription trie, retained messages), one ``MqttProtocol`` per connection and the
``PublishCheck`` they share. Transports (``emulator/transport/``) hand it each client's
``Link`` through ``serve_link``, which runs a ``Connection`` driver to the end. The broker
owns what needs the event loop: the connection tasks, one ``loop.call_later`` timer per
offline persistent session (AWS: it expires ``session_expiry`` after the disconnect), and
one per reconnected session with stored messages, which sends them at AWS's resend rate
(``BrokerState.resend_next``, every 1/``stored_resend_rate`` s; stopped while the client's
in-flight window is full, restarted by its PUBACK). The quotas (``BrokerQuotas``) are
built once from the config and read by the pure parts.

``publish()`` is the one entry point for every message (client PUBLISH, lifecycle event,
Last Will, data-plane publish, a rule's republish), and it is synchronous: the retained
store, one trie lookup, the PUBLISH bytes written to each subscriber's link (coalesced per
loop turn by the link), then ``on_message`` (the rules engine), as AWS IoT hands every
message to its rules. No task or queue per message. A Basic Ingest message
(``$aws/rules/<rule>/...``, an ``IngestMessage``) takes ``ingest()`` instead: no retained
store, no subscriber, straight to ``on_ingest`` (the rules engine, which runs that one
rule). The publish path does not test for it: the protocol and the data plane tell the
two apart where they already test a topic for ``$`` (``PublishCheck.client_publish``).

amqtt is used only to decode CONNECT/SUBSCRIBE/UNSUBSCRIBE (``amqtt_codec.py``); its
``Broker`` is not (see docs/broker.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping

from emulator.broker.auth import Authorizer
from emulator.broker.codec5 import SERVER_SHUTTING_DOWN as _SHUTTING_DOWN
from emulator.broker.codec5 import encode_disconnect
from emulator.broker.connection import Connection
from emulator.broker.link import Link
from emulator.broker.protocol import MqttProtocol
from emulator.broker.quotas import BrokerQuotas
from emulator.broker.sessions import Session
from emulator.broker.state import BrokerState, RetainedMessage
from emulator.clock import now_ms
from emulator.config import Config
from emulator.limits import PublishCheck
from emulator.messages import InboundMessage, IngestMessage
from emulator.tasks import cancel_and_wait
from emulator.topics import TopicTrie

log = logging.getLogger(__name__)

OnMessage = Callable[[InboundMessage], None]
OnIngest = Callable[[IngestMessage], None]
STOP_TIMEOUT = 5.0  # seconds for connection tasks to unwind at stop()
SERVER_SHUTTING_DOWN = encode_disconnect(_SHUTTING_DOWN)  # told to MQTT 5 clients at stop()


def _new_uuid() -> str:
    return str(uuid.uuid4())


class IoTBroker:
    """The message broker with AWS IoT semantics and a fast delivery path."""

    def __init__(
        self,
        config: Config,
        on_message: OnMessage | None = None,
        authorizer: Authorizer | None = None,
        on_ingest: OnIngest | None = None,
    ) -> None:
        self.settings = config
        self.on_message = on_message
        self.on_ingest = on_ingest
        self.quotas = BrokerQuotas.from_config(config)
        self.state = BrokerState(authorizer, self.quotas)
        # Bound once: publish() runs for every message, twice for a republished one.
        self._match = self.state.subscriptions.match
        self._deliver = self.state.deliver
        # The one check of a client's publish (MQTT here; the data plane may share it).
        self.publish_check = PublishCheck()
        self._connections: set[asyncio.Task[object]] = set()
        # (at most this many connections, future) for wait_connections()
        self._count_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # client ID -> (absences, timer) of each offline persistent session
        self._expiry_timers: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._stopped = False
        self._expiry_left_at_stop: dict[str, float] = {}
        # client ID -> the timer of its delayed MQTT 5 Last Will (cancelled if it is back)
        self._will_timers: dict[str, asyncio.TimerHandle] = {}
        # Called with the client ID when a persistent session expires (tests, /health).
        self.expiry_listeners: list[Callable[[str], None]] = []

    # -- read-only views of the state (/health, tests) -----------------------------------
    @property
    def iot_sessions(self) -> Mapping[str, Session]:
        return self.state.sessions

    @property
    def topic_subscriptions(self) -> TopicTrie[str, int]:
        return self.state.subscriptions

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Nothing to bind: the transports call ``serve_link`` (transport/tcp.py listens)."""
        self._stopped = False

    async def stop(self) -> None:
        """Close every connection (each publishes its Last Will) and cancel the timers."""
        self._expiry_left_at_stop = self.expiry_left()
        self._stopped = True
        for _, timer in self._expiry_timers.values():
            timer.cancel()
        self._expiry_timers.clear()
        for will_timer in self._will_timers.values():
            will_timer.cancel()
        self._will_timers.clear()
        for session in list(self.state.sessions.values()):
            if session.link is not None:
                if session.protocol == 5:
                    session.link.write(SERVER_SHUTTING_DOWN)
                session.link.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await cancel_and_wait(*self._connections)
        except TimeoutError:
            log.warning(
                "%d connections still ending %g s after stop", len(self._connections), STOP_TIMEOUT
            )

    def set_on_message(self, on_message: OnMessage | None) -> None:
        self.on_message = on_message

    def set_authorizer(self, authorizer: Authorizer | None) -> None:
        """New policies (hot reload), applied to messages from then on."""
        self.state.set_authorizer(authorizer)

    # -- connections -------------------------------------------------------------------
    async def serve_link(self, link: Link) -> None:
        """Run one client connection to its end; never raises (a client can't kill us)."""
        if self._stopped:
            link.close()
            await link.wait_closed()
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        protocol = MqttProtocol(
            self.state,
            self.publish_check,
            link,
            _new_uuid,
            now_ms(),
            self.settings.keepalive_factor,
        )
        try:
            await Connection(link, protocol, self).run()
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

    # -- persistent-session expiry -------------------------------------------------------
    def start_expiry(self, client_id: str, absences: int, after: float | None = None) -> None:
        """AWS: the expiry timer starts when the broker sees the client disconnect. ``after``
        (seconds; default ``session_expiry``): what a session loaded from disk has left."""
        previous = self._expiry_timers.pop(client_id, None)
        if previous is not None:
            previous[1].cancel()
        if self._stopped:
            return
        timer = asyncio.get_running_loop().call_later(
            self.settings.session_expiry if after is None else after,
            self._expire,
            client_id,
            absences,
        )
        self._expiry_timers[client_id] = (absences, timer)

    def expiry_left(self) -> dict[str, float]:
        """Seconds left before each offline persistent session expires (saving them); after
        ``stop``, what they had left when it cancelled the timers."""
        if self._stopped:
            return dict(self._expiry_left_at_stop)
        now = asyncio.get_running_loop().time()
        return {cid: timer.when() - now for cid, (_, timer) in self._expiry_timers.items()}

    def _expire(self, client_id: str, absences: int) -> None:
        entry = self._expiry_timers.get(client_id)
        if entry is not None and entry[0] == absences:
            del self._expiry_timers[client_id]
        if self.state.expire(client_id, absences) is not None:
            for listener in self.expiry_listeners:
                listener(client_id)

    # -- delayed Last Will (MQTT 5) -------------------------------------------------------
    def publish_later(self, client_id: str, message: InboundMessage, delay: float) -> None:
        """Publish an MQTT 5 Last Will after its Will Delay Interval, unless the client
        connected again in the meantime (its session's ``absences`` moved on, or it is
        connected). One timer per client ID: a newer will replaces an older one."""
        previous = self._will_timers.pop(client_id, None)
        if previous is not None:
            previous.cancel()
        if self._stopped:
            return
        session = self.state.sessions.get(client_id)
        absences = session.absences if session is not None else -1
        self._will_timers[client_id] = asyncio.get_running_loop().call_later(
            delay, self._publish_will, client_id, message, absences
        )

    def _publish_will(self, client_id: str, message: InboundMessage, absences: int) -> None:
        self._will_timers.pop(client_id, None)
        session = self.state.sessions.get(client_id)
        if session is not None and (session.owner is not None or session.absences != absences):
            log.info("client %r came back: its delayed Last Will is not published", client_id)
            return
        log.info("publishing the delayed Last Will of client %r", client_id)
        # stamped now: delivery reads the time (what is left of its expiry) from it
        self.publish(dataclasses.replace(message, timestamp_ms=now_ms()))

    # -- stored messages after a reconnect ----------------------------------------------
    def start_resend(self, session: Session, owner: MqttProtocol) -> None:
        """AWS: stored messages go out at 10 per second after a reconnect. One timer per
        session, the first message at once."""
        if not self._stopped:
            asyncio.get_running_loop().call_soon(self._resend, session, owner)

    def _resend(self, session: Session, owner: MqttProtocol) -> None:
        if self._stopped or session.owner is not owner:
            return  # the connection ended or was taken over: its successor resends
        try:
            more = self.state.resend_next(session, now_ms())
        except Exception:
            log.exception("resending the stored messages of %r failed", session.client_id)
            return
        if more:
            asyncio.get_running_loop().call_later(
                1 / self.quotas.stored_resend_rate, self._resend, session, owner
            )

    # -- delivery ----------------------------------------------------------------------
    def publish(self, message: InboundMessage) -> None:
        """Deliver to subscribers, keep it if retained, then hand it to the rules engine."""
        topic = message.topic
        if message.retain:
            self.state.retain(message, now_ms())
        matches = self._match(topic)
        if matches or self.state.has_shared:
            self._deliver(
                topic, message.payload, message.qos, matches, message.timestamp_ms, message
            )
        on_message = self.on_message
        if on_message is not None:
            try:
                on_message(message)
            except Exception:
                log.exception("rules engine failed on a message on %r", topic)

    def ingest(self, message: IngestMessage) -> None:
        """A Basic Ingest message: to its rule only, never retained nor delivered (AWS:
        "removing the publish/subscribe message broker from the ingestion path")."""
        on_ingest = self.on_ingest
        if on_ingest is None:
            log.warning("no rules engine for a Basic Ingest message on %r", message.published_topic)
            return
        try:
            on_ingest(message)
        except Exception:
            log.exception("rules engine failed on a message on %r", message.published_topic)

    def emit_event(self, topic: str, payload: bytes) -> None:
        """Publish a message of the broker's own (lifecycle events)."""
        self.publish(InboundMessage(topic, payload, 0, False, None, None, now_ms()))

    # -- retained-message API (IoT data plane) -----------------------------------------
    def get_retained(self, topic: str) -> RetainedMessage | None:
        return self.state.retained.get(topic)

    def list_retained(self) -> list[RetainedMessage]:
        return sorted(self.state.retained.values(), key=lambda r: r.topic)
