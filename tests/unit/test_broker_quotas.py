"""AWS IoT's per-connection quotas in the pure broker code, with an injected clock.

``quotas.py`` alone (token bucket, log limiter, keep-alive clamp), then the protocol and the
broker state with the limits applied: no event loop, no sockets.
"""

from __future__ import annotations

import logging
from collections import deque

import pytest

from emulator.broker import codec
from emulator.broker.codec import FrameReader
from emulator.broker.lifecycle import DisconnectReason
from emulator.broker.protocol import ConnState, MqttProtocol, StartResend
from emulator.broker.quotas import COST, BrokerQuotas, LimitLog, TokenBucket
from emulator.broker.state import BrokerState
from emulator.config import Config
from emulator.limits import PublishCheck
from emulator.messages import InboundMessage
from emulator.testing import connect_packet, mqtt_string, publish_packet
from emulator.transport.memory import MemoryLink, link_pair

NOW = 1_700_000_000_000


def subscribe_packet(packet_id: int, *filters: tuple[str, int]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(mqtt_string(f) + bytes((q,)) for f, q in filters)
    return b"\x82" + codec.encode_length(len(body)) + body


class Clients:
    """One ``BrokerState`` with ``quotas``; connections over in-memory link pairs."""

    def __init__(self, quotas: BrokerQuotas | None = None) -> None:
        self.state = BrokerState(quotas=quotas or BrokerQuotas())
        self.check = PublishCheck()
        self.ids = 0

    def new_uuid(self) -> str:
        self.ids += 1
        return f"uuid-{self.ids}"

    def connect(
        self, client_id: str, now: int = NOW, keepalive: int = 60, clean: bool = True
    ) -> tuple[MqttProtocol, MemoryLink, list[object]]:
        client, server = link_pair()
        protocol = MqttProtocol(self.state, self.check, server, self.new_uuid, now)
        out = protocol.receive(connect_packet(client_id, keepalive, clean), now)
        for item in out:  # the driver's part for writes: CONNACK, SUBACK, ...
            if isinstance(item, bytes):
                server.write(item)
        return protocol, client, list(out)


def frames(link: MemoryLink) -> list[codec.Frame]:
    return FrameReader(1 << 20).feed(link.take())


def publishes(link: MemoryLink) -> list[codec.Publish]:
    return [codec.decode_publish(f) for f in frames(link) if f.type == codec.PUBLISH]


def deliver(state: BrokerState, topic: str, payload: bytes, qos: int = 1, now: int = NOW) -> None:
    state.deliver(topic, payload, qos, state.subscriptions.match(topic), now)


# -- quotas.py ------------------------------------------------------------------------------


def test_the_quotas_come_from_the_config_with_aws_values() -> None:
    quotas = BrokerQuotas.from_config(Config())
    assert quotas == BrokerQuotas()
    assert (quotas.max_inflight, quotas.publish_rate, quotas.throughput_bytes) == (100, 100, 524288)
    assert (quotas.max_subscriptions, quotas.max_filters_per_subscribe) == (50, 8)
    assert (quotas.stored_resend_rate, quotas.connect_interval_ms, quotas.max_queued) == (
        10,
        1000,
        1000,
    )
    assert quotas.client_buffer_bytes == 8 * 1024 * 1024
    # Packet ids are 16 bits: a bigger window could not be numbered.
    assert BrokerQuotas.from_config(Config(max_inflight=10**6)).max_inflight == 65535
    assert BrokerQuotas.from_config(Config(connect_rate=0)).connect_interval_ms == 0


@pytest.mark.parametrize(
    ("requested", "applied"), [(0, 1200), (65535, 1200), (1, 30), (29, 30), (30, 30), (600, 600)]
)
def test_keep_alive_is_clamped_as_aws_does(requested: int, applied: int) -> None:
    assert BrokerQuotas().keep_alive(requested) == applied


def test_token_bucket_allows_a_second_of_burst_then_refills_lazily() -> None:
    bucket = TokenBucket(100, NOW)
    assert sum(bucket.take(NOW) for _ in range(150)) == 100
    assert not bucket.take(NOW + 9)  # 0.9 of a token back
    assert bucket.take(NOW + 10)
    assert sum(bucket.take(NOW + 510) for _ in range(100)) == 50
    bucket.refill(NOW + 100_000)
    assert bucket.tokens == 100 * COST  # never more than one second's worth


def test_token_bucket_charge_goes_into_debt_and_says_how_long_to_wait() -> None:
    bucket = TokenBucket(1000, NOW)  # 1000 bytes per second
    assert bucket.charge(NOW, 600) == 0
    assert bucket.charge(NOW, 900) == 500  # 500 bytes over: half a second
    assert bucket.charge(NOW + 500, 0) == 0


def test_limit_log_reports_once_per_interval_with_the_count() -> None:
    limit = LimitLog(10_000)
    counts = [limit.hit(NOW + i) for i in range(1000)]
    assert counts[0] == 1 and sum(1 for c in counts if c) == 1
    assert limit.hit(NOW + 10_000) == 1000  # the 999 since, and this one


# -- the protocol ---------------------------------------------------------------------------


@pytest.mark.parametrize(("requested", "timeout_ms"), [(0, 1_800_000), (65535, 1_800_000)])
def test_keep_alive_0_and_65535_time_out_after_1_5_x_1200_s(
    requested: int, timeout_ms: int
) -> None:
    protocol, _, _ = Clients().connect("k", keepalive=requested)
    assert protocol.deadline == NOW + timeout_ms
    protocol.receive(b"\xc0", NOW + 5_000)  # PINGREQ
    assert protocol.deadline == NOW + 5_000 + timeout_ms


def test_publishes_over_the_rate_are_dropped_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, _, _ = Clients().connect("flood")
    burst = b"".join(publish_packet("t", str(i).encode()) for i in range(150))
    with caplog.at_level(logging.WARNING):
        out = protocol.receive(burst, NOW)
        later = protocol.receive(burst, NOW + 500)  # half a second: 50 more tokens
    accepted = [o for o in out if isinstance(o, InboundMessage)]
    assert [m.payload for m in accepted] == [str(i).encode() for i in range(100)]
    assert len([o for o in later if isinstance(o, InboundMessage)]) == 50
    assert protocol.state is ConnState.CONNECTED  # dropped, not disconnected
    throttled = [r for r in caplog.records if "publish_rate" in r.getMessage()]
    # 150 dropped over 0.5 s: one line, at the first (the next comes with the count)
    assert len(throttled) == 1 and "1 PUBLISH dropped" in throttled[0].getMessage()


def test_reading_pauses_over_the_throughput_quota() -> None:
    quotas = BrokerQuotas(throughput_bytes=1000, publish_rate=10**6)
    protocol, _, _ = Clients(quotas).connect("fast")
    protocol.receive(publish_packet("t", b"x" * 700), NOW)
    assert protocol.resume_at == 0  # within the one second of burst
    out = protocol.receive(publish_packet("t", b"y" * 700), NOW)
    assert protocol.resume_at > NOW  # the bytes are taken, the next read waits
    assert len([o for o in out if isinstance(o, InboundMessage)]) == 1
    debt = len(connect_packet("fast")) + 2 * len(publish_packet("t", b"x" * 700)) - 1000
    assert protocol.resume_at == NOW + debt  # 1000 bytes per second: 1 ms per byte


def test_more_than_8_filters_in_one_subscribe_closes_the_connection() -> None:
    clients = Clients()
    protocol, link, _ = clients.connect("many")
    out = protocol.receive(subscribe_packet(1, *((f"f/{i}", 0) for i in range(8))), NOW)
    assert bytes(out[0])[:1] == b"\x90"  # 8 filters: SUBACK
    out = protocol.receive(subscribe_packet(2, *((f"g/{i}", 0) for i in range(9))), NOW)
    assert not [o for o in out if isinstance(o, bytes)]  # no SUBACK
    assert protocol.state is ConnState.CLOSING
    assert protocol.close_reason is DisconnectReason.CLIENT_ERROR
    assert not clients.state.subscriptions.match("g/0")


def test_subscriptions_past_50_get_suback_failure() -> None:
    clients = Clients()
    protocol, _, _ = clients.connect("subs")
    codes = b""
    for batch in range(7):  # 56 filters, 8 at a time
        packet = subscribe_packet(batch + 1, *((f"s/{batch * 8 + i}", 1) for i in range(8)))
        suback = next(o for o in protocol.receive(packet, NOW) if isinstance(o, bytes))
        codes += bytes(suback)[4:]
    assert codes == b"\x01" * 50 + b"\x80" * 6
    assert len(clients.state.sessions["subs"].subscriptions) == 50
    # Subscribing again to a filter it has is not a new subscription.
    suback = next(
        o for o in protocol.receive(subscribe_packet(9, ("s/0", 0)), NOW) if isinstance(o, bytes)
    )
    assert bytes(suback)[4:] == b"\x00"


def test_a_second_connect_with_the_same_client_id_within_a_second_is_refused() -> None:
    clients = Clients()
    first, _, _ = clients.connect("twin")
    second, _, out = clients.connect("twin", now=NOW + 999)
    assert second.state is ConnState.CLOSING and second.close_reason is DisconnectReason.THROTTLED
    assert not [o for o in out if isinstance(o, bytes)]  # no CONNACK
    assert first.state is ConnState.CONNECTED  # not taken over
    third, _, _ = clients.connect("twin", now=NOW + 1000)
    assert third.state is ConnState.CONNECTED and first.state is ConnState.CLOSING
    other, _, _ = clients.connect("other", now=NOW + 1000)  # per client ID
    assert other.state is ConnState.CONNECTED


# -- the state: in-flight window, queue, buffer cap -----------------------------------------


def test_qos1_in_flight_never_exceeds_the_window_and_never_overflows() -> None:
    clients = Clients()
    attacker, attacker_link, _ = clients.connect("attacker")
    bystander, bystander_link, _ = clients.connect("bystander")
    attacker.receive(subscribe_packet(1, ("chat/pub/#", 1)), NOW)
    bystander.receive(subscribe_packet(1, ("chat/pub/#", 0)), NOW)
    attacker_link.take(), bystander_link.take()
    for i in range(70_000):  # more than 65,535 packet ids
        deliver(clients.state, "chat/pub/lobby", str(i).encode(), now=NOW + i)
    session = clients.state.sessions["attacker"]
    assert len(session.inflight) == 100 and len(session.queued) == 1000
    assert len(publishes(attacker_link)) == 100
    assert len(publishes(bystander_link)) == 70_000
    # A PUBACK frees a slot for the next queued message, in order.
    attacker.receive(codec.encode_puback(1), NOW)
    (sent,) = publishes(attacker_link)
    assert sent.payload == b"100" and len(session.queued) == 999


def test_a_full_queue_drops_new_messages_with_a_bounded_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clients = Clients()
    protocol, _, _ = clients.connect("away", clean=False)
    protocol.receive(subscribe_packet(1, ("q", 1)), NOW)
    protocol.connection_lost()
    protocol.end(NOW)
    with caplog.at_level(logging.WARNING):
        for i in range(10_000):
            deliver(clients.state, "q", str(i).encode(), now=NOW + i)  # 10 s
    queued = clients.state.sessions["away"].queued
    assert len(queued) == 1000 and queued[-1].payload == b"999"
    lines = [r for r in caplog.records if "max_queued_messages" in r.getMessage()]
    assert 1 <= len(lines) <= 2


class Boom(MemoryLink):
    def write(self, data: bytes) -> None:
        raise RuntimeError("broken link")


def test_one_clients_failure_does_not_stop_the_delivery_to_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clients = Clients()
    bad, _, _ = clients.connect("bad")
    good, good_link, _ = clients.connect("good")
    bad.receive(subscribe_packet(1, ("t", 1)), NOW)
    good.receive(subscribe_packet(1, ("t", 1)), NOW)
    good_link.take()
    clients.state.sessions["bad"].link = Boom()
    with caplog.at_level(logging.ERROR):
        deliver(clients.state, "t", b"m")
    assert [p.payload for p in publishes(good_link)] == [b"m"]
    assert any("'bad'" in r.getMessage() for r in caplog.records)


def test_a_client_over_the_buffer_cap_is_disconnected_and_keeps_its_qos1() -> None:
    clients = Clients(BrokerQuotas(client_buffer_bytes=1000))
    protocol, link, _ = clients.connect("slow", clean=False)
    protocol.receive(subscribe_packet(1, ("t", 1)), NOW)
    link.take()
    # The client reads nothing: what the broker wrote piles up in its link.
    for i in range(5):
        deliver(clients.state, "t", bytes([i]) * 400)
    session = clients.state.sessions["slow"]
    assert protocol.state is ConnState.CLOSING
    assert protocol.close_reason is DisconnectReason.THROTTLED
    assert session.link is None and link.closed  # aborted
    assert len(session.inflight) == 3  # written before the cap
    assert [o.payload[0] for o in session.queued] == [3, 4]  # kept for the next connection


def test_stored_messages_wait_for_a_free_slot_then_resume() -> None:
    clients = Clients(BrokerQuotas(max_inflight=2, connect_interval_ms=0))
    protocol, _, _ = clients.connect("p", clean=False)
    protocol.receive(subscribe_packet(1, ("q", 1)), NOW)
    protocol.connection_lost()
    protocol.end(NOW)
    for i in range(4):
        deliver(clients.state, "q", bytes([i]))
    back, link, out = clients.connect("p", clean=False)
    session = clients.state.sessions["p"]
    assert out[-1] == StartResend(session, back)
    state = clients.state
    assert state.resend_next(session) is True
    assert state.resend_next(session) is True
    assert state.resend_next(session) is False  # window full: waits for a PUBACK
    assert session.resend_waiting
    assert [p.payload for p in publishes(link)] == [b"\x00", b"\x01"]
    assert back.receive(codec.encode_puback(1), NOW) == [StartResend(session, back)]
    assert state.resend_next(session) is True
    assert session.queued == deque([session.queued[0]])


def test_refused_connects_subscriptions_and_slow_reads_are_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clients = Clients(BrokerQuotas(throughput_bytes=1000, max_subscriptions=1))
    protocol, _, _ = clients.connect("twin")
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            refused, _, _ = clients.connect("twin", now=NOW + 100 + i)
            assert refused.state is ConnState.CLOSING
        for i in range(5):
            protocol.receive(subscribe_packet(i + 1, (f"a/{i}", 0), (f"b/{i}", 0)), NOW + 200)
        for i in range(5):
            protocol.receive(publish_packet("t", b"x" * 900), NOW + 300 + i)
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "connect_rate" in m]) == 1
    assert len([m for m in lines if "max_subscriptions" in m]) == 1
    assert len([m for m in lines if "throughput_kib" in m]) == 1
    assert all("\n" not in m for m in lines)


def test_control_characters_in_client_ids_and_topics_do_not_reach_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clients = Clients()
    with caplog.at_level(logging.INFO):
        protocol, _, _ = clients.connect("evil\nINFO forged line")
        protocol.receive(subscribe_packet(1, ("bad/#/x\r\nforged", 0)), NOW)
        protocol.receive(publish_packet("$aws/x\nforged", b"p"), NOW)
    assert caplog.records
    for record in caplog.records:
        message = record.getMessage()
        assert "\n" not in message and "\r" not in message, message
