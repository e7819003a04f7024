"""``BrokerState``: sessions, subscriptions, retained messages and delivery, as plain data.

The outlets are in-memory links; what they were given is read back as frames.
"""

from __future__ import annotations

from emulator.broker import codec
from emulator.broker.auth import ClientIdentity, Decision
from emulator.broker.codec import FrameReader, Publish
from emulator.broker.sessions import Session
from emulator.broker.state import VERSIONS_KEPT, BrokerState
from emulator.messages import InboundMessage
from emulator.transport.memory import MemoryLink, link_pair

NOW = 1_700_000_000_000


class Owner:
    def __init__(self) -> None:
        self.told = False

    def taken_over(self) -> None:
        self.told = True

    def overflowed(self, buffered: int) -> None:
        self.told = True


class Client:
    """A session attached to ``state`` through one end of a link pair."""

    def __init__(self, state: BrokerState, client_id: str, clean: bool = True) -> None:
        self.end, server = link_pair()
        self.server: MemoryLink = server
        self.owner = Owner()
        identity = ClientIdentity(client_id, "p-" + client_id, "127.0.0.1")
        self.session, self.present = state.attach(
            client_id, clean, self.owner, server, identity, "sid-" + client_id
        )
        self._reader = FrameReader(1 << 20)
        self._seen: list[Publish] = []

    def received(self) -> list[Publish]:
        """Every PUBLISH written to this client so far."""
        frames = self._reader.feed(self.end.take())
        self._seen += [codec.decode_publish(f) for f in frames]
        return self._seen


def publish(state: BrokerState, topic: str, payload: bytes, qos: int = 0) -> None:
    matches = state.subscriptions.match(topic)
    if matches:
        state.deliver(topic, payload, qos, matches)


def test_one_delivery_per_client_at_its_highest_granted_qos() -> None:
    state = BrokerState()
    client = Client(state, "c")
    state.subscribe(client.session, "a/+", 0)
    state.subscribe(client.session, "a/#", 1)
    publish(state, "a/b", b"m", qos=1)
    (got,) = client.received()
    assert (got.qos, got.packet_id) == (1, 1)
    assert client.session.inflight[1].payload == b"m"


def test_the_granted_qos_is_at_most_the_message_qos() -> None:
    state = BrokerState()
    client = Client(state, "c")
    state.subscribe(client.session, "a", 1)
    publish(state, "a", b"m", qos=0)
    assert [(p.qos, p.packet_id) for p in client.received()] == [(0, None)]
    assert client.session.inflight == {}


def test_offline_persistent_sessions_queue_qos1_only_and_bounded() -> None:
    state = BrokerState()
    max_queued = state.quotas.max_queued
    client = Client(state, "p", clean=False)
    state.subscribe(client.session, "q", 1)
    state.subscribe(client.session, "z", 0)
    assert state.detach(client.session, client.owner) is True
    for i in range(max_queued + 5):
        publish(state, "q", str(i).encode(), qos=1)
    publish(state, "z", b"qos0 is not stored", qos=0)
    queued = client.session.queued
    assert len(queued) == max_queued
    # AWS drops the messages that exceed the queue: the new ones.
    assert (queued[0].payload, queued[-1].payload) == (b"0", str(max_queued - 1).encode())


def test_a_clean_session_ends_with_its_connection() -> None:
    state = BrokerState()
    client = Client(state, "c")
    state.subscribe(client.session, "t", 0)
    assert state.detach(client.session, client.owner) is False
    assert state.sessions == {}
    assert state.subscriptions.match("t") == []


def test_take_over_detaches_the_connected_session() -> None:
    state = BrokerState()
    old = Client(state, "twin", clean=False)
    taken = state.take_over("twin")
    assert taken is not None
    assert (taken.link, taken.owner, taken.session_id, taken.principal, taken.version) == (
        old.server,
        old.owner,
        "sid-twin",
        "p-twin",
        0,
    )
    assert old.session.owner is None and "twin" in state.sessions  # persistent: kept
    new = Client(state, "twin", clean=False)
    assert new.session is old.session and new.present
    assert new.session.version == 1
    # The old connection's end no longer detaches what the new one has.
    assert state.detach(new.session, old.owner) is False
    assert new.session.owner is new.owner
    assert state.take_over("nobody") is None


def test_taking_over_a_clean_session_drops_it() -> None:
    state = BrokerState()
    old = Client(state, "twin")
    state.subscribe(old.session, "t", 0)
    assert state.take_over("twin") is not None
    assert state.sessions == {} and state.subscriptions.match("t") == []


def test_stored_redelivers_in_flight_with_dup_then_the_queue() -> None:
    state = BrokerState()
    client = Client(state, "p", clean=False)
    state.subscribe(client.session, "q", 1)
    publish(state, "q", b"in flight", qos=1)
    state.detach(client.session, client.owner)
    publish(state, "q", b"queued", qos=1)
    back = Client(state, "p", clean=False)
    # One stored message per call (the broker's timer paces the calls).
    assert state.resend_next(back.session) is True
    assert [(p.payload, p.dup, p.packet_id) for p in back.received()] == [(b"in flight", True, 1)]
    assert state.resend_next(back.session) is False
    assert [(p.payload, p.dup, p.packet_id) for p in back.received()[1:]] == [(b"queued", False, 2)]
    assert list(back.session.queued) == []
    state.acknowledged(back.session, 1)
    assert list(back.session.inflight) == [2]


def test_retained_messages_are_kept_replaced_and_deleted() -> None:
    state = BrokerState()
    state.retain(InboundMessage("r", b"1", 1, True, timestamp_ms=5), NOW)
    state.retain(InboundMessage("r", b"2", 0, True), NOW)
    retained = state.retained["r"]
    assert (retained.payload, retained.qos, retained.last_modified_ms) == (b"2", 0, NOW)
    state.retain(InboundMessage("r", b"", 0, True), NOW)
    assert state.retained == {}


def test_retained_sent_on_subscription_to_the_exact_topic_only() -> None:
    state = BrokerState()
    state.retain(InboundMessage("r/t", b"kept", 1, True), NOW)
    client = Client(state, "c")
    assert state.retained_for(client.session, "r/+", 1) is None
    assert state.retained_for(client.session, "r/#", 1) is None
    assert state.retained_for(client.session, "other", 1) is None
    data = state.retained_for(client.session, "r/t", 0)
    assert data == codec.encode_publish(b"r/t", b"kept", 0, True)


def test_lifecycle_versions_increase_per_client_and_are_bounded() -> None:
    state = BrokerState()
    assert [state.next_version("a"), state.next_version("a"), state.next_version("b")] == [0, 1, 0]
    for i in range(VERSIONS_KEPT):
        state.next_version(f"c-{i}")
    assert state.next_version("a") == 0  # forgotten: the oldest of more than VERSIONS_KEPT


class DenyReceiveOn:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.checks = 0

    def check(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        if action == "iot:Receive":
            self.checks += 1
            return Decision(resource != self.topic, "test")
        return Decision(True, "test")


def test_receive_is_authorized_per_topic_and_cached() -> None:
    policy = DenyReceiveOn("secret")
    state = BrokerState(policy)
    client = Client(state, "c")
    state.subscribe(client.session, "#", 0)
    for _ in range(3):
        publish(state, "secret", b"no")
        publish(state, "open", b"yes")
    assert [p.payload for p in client.received()] == [b"yes"] * 3
    assert policy.checks == 2  # once per topic
    state.set_authorizer(DenyReceiveOn("open"))  # hot reload: decisions made again
    publish(state, "secret", b"now yes")
    assert client.received()[-1].payload == b"now yes"


def test_packet_ids_skip_those_in_flight_and_wrap() -> None:
    session = Session("s", True)
    session.next_packet_id = 65534
    session.inflight[1] = session.inflight[65535] = None  # type: ignore[assignment]
    assert [session.allocate_packet_id() for _ in range(2)] == [2, 3]
