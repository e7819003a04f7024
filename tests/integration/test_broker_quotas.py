"""AWS IoT's per-connection quotas over real sockets: one misbehaving client must not take
the broker down for the others (issue 12).

Attackers are raw MQTT byte streams (tests/integration/raw.py): they do what a library
would not (never PUBACK, never read). Bystanders are paho clients. Where a test is not about
the publisher's own quotas, it raises ``publish_rate`` and ``throughput_kib`` through the
factory so that one publisher can send tens of thousands of messages in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from emulator.broker import codec
from emulator.broker.codec import encode_length
from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle
from emulator.testing import TestClient, connect_packet, mqtt_string, publish_packet
from tests.integration.conftest import SETTINGS
from tests.integration.raw import RawConnection

FAST_PUBLISHER = {"publish_rate": 10**9, "throughput_kib": 10**9}
MIB = 1024 * 1024


def subscribe_packet(packet_id: int, *filters: tuple[str, int]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(mqtt_string(f) + bytes((q,)) for f, q in filters)
    return b"\x82" + encode_length(len(body)) + body


async def raw_connect(conn: RawConnection, client_id: str, clean: bool = True) -> codec.Frame:
    await conn.send(connect_packet(client_id, clean=clean))
    connack = await conn.next_frame()
    assert connack.type == codec.CONNACK and connack.body[1] == 0
    return connack


async def raw_subscribe(conn: RawConnection, *filters: tuple[str, int]) -> bytes:
    await conn.send(subscribe_packet(1, *filters))
    suback = await conn.next_frame()
    assert suback.type == codec.SUBACK
    return suback.body[2:]


async def publish_qos1(conn: RawConnection, topic: str, count: int, batch: int = 1000) -> None:
    """``count`` QoS 1 PUBLISHes (payload: the index), ``batch`` at a time, each batch's
    PUBACKs awaited: the broker has delivered a message when it acknowledges it."""
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        await conn.send(
            b"".join(
                publish_packet(topic, str(sent + i).encode(), 1, (sent + i) % 65535 + 1)
                for i in range(n)
            )
        )
        for _ in range(n):
            assert (await conn.next_frame(30)).type == codec.PUBACK
        sent += n


async def received(client: TestClient, count: int, timeout: float = 60) -> list[bytes]:
    """The payloads of the next ``count`` messages of ``client``."""
    out: list[bytes] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            out.append((await client.messages.get()).payload)
    return out


def rss_bytes() -> int:
    """This process's resident memory (the emulator runs in the test's process)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def start(factory: EmulatorFactory, **settings: object) -> EmulatorHandle:
    return await factory(**{**SETTINGS, **settings})


async def bystander(handle: EmulatorHandle, transport: str, topic_filter: str) -> TestClient:
    client = await handle.mqtt_client("bystander", transport)
    assert await client.subscribe(topic_filter, 0) == [0]
    return client


# -- (1) and (2): a QoS 1 subscriber that never acknowledges -------------------------------


async def test_a_subscriber_that_never_acks_has_at_most_max_inflight_and_stops_nobody(
    iot_emulator_factory: EmulatorFactory, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    handle = await start(iot_emulator_factory, **FAST_PUBLISHER)
    emulator = handle.emulator
    attacker = await RawConnection.open(emulator, transport)
    await raw_connect(attacker, "attacker")
    assert await raw_subscribe(attacker, ("chat/pub/#", 1)) == b"\x01"
    watcher = await bystander(handle, transport, "chat/pub/#")
    publisher = await RawConnection.open(emulator, "tcp")
    await raw_connect(publisher, "publisher")
    total = 70_001  # past 65,535 packet identifiers
    await publish_qos1(publisher, "chat/pub/lobby", total)
    got = await received(watcher, total)
    assert got == [str(i).encode() for i in range(total)]
    # The attacker was sent its window, and no more; the rest waits, bounded.
    frames = [await attacker.next_frame() for _ in range(100)]
    assert [codec.decode_publish(f).payload for f in frames] == [
        str(i).encode() for i in range(100)
    ]
    session = emulator.broker.iot_sessions["attacker"]
    assert len(session.inflight) == 100 and len(session.queued) == 1000
    assert not errors(caplog)
    await attacker.close()
    await publisher.close()


async def test_a_persistent_subscriber_that_never_acks_then_reconnects_gets_stored_at_the_rate(
    iot_emulator_factory: EmulatorFactory, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A small window and queue so that the resend, at AWS's 10 per second, lasts seconds.
    handle = await start(
        iot_emulator_factory,
        **FAST_PUBLISHER,
        max_inflight=10,
        max_queued_messages=20,
        connect_rate=0,  # not about the CONNECT rate: the attacker reconnects at once
    )
    emulator = handle.emulator
    attacker = await RawConnection.open(emulator, transport)
    await raw_connect(attacker, "attacker", clean=False)
    assert await raw_subscribe(attacker, ("chat/pub/#", 1)) == b"\x01"
    watcher = await bystander(handle, transport, "chat/pub/#")
    publisher = await RawConnection.open(emulator, "tcp")
    await raw_connect(publisher, "publisher")
    await publish_qos1(publisher, "chat/pub/lobby", 70_001)
    assert len(await received(watcher, 70_001)) == 70_001
    assert await watcher.subscribe("$aws/events/presence/disconnected/attacker", 0) == [0]
    await attacker.close()  # drops without PUBACK or DISCONNECT
    await watcher.message_on("$aws/events/presence/disconnected/attacker")
    back = await RawConnection.open(emulator, transport)
    connack = await raw_connect(back, "attacker", clean=False)
    assert connack.body[0] == 1  # session present
    # The broker keeps serving the bystander while the stored messages trickle out.
    await publish_qos1(publisher, "chat/pub/after", 5)
    assert await received(watcher, 5) == [str(i).encode() for i in range(5)]
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, codec.Publish]] = []
    async with asyncio.timeout(30):
        while len(arrivals) < 30:  # 10 again (DUP), 20 stored while away
            publish = codec.decode_publish(await back.next_frame())
            arrivals.append((loop.time(), publish))
            await back.send(codec.encode_puback(publish.packet_id or 0))
    # The 10 in flight again (DUP), then the 20 queued; the 5 published since found the
    # window and the queue full (AWS drops the new ones).
    assert [p.payload for _, p in arrivals] == [str(i).encode() for i in range(30)]
    assert [p.dup for _, p in arrivals] == [True] * 10 + [False] * 20
    # AWS: 10 stored messages per second. 30 take about 2.9 s; never a burst.
    first = arrivals[0][0]
    assert arrivals[-1][0] - first >= 2.0
    assert sum(1 for t, _ in arrivals if t - first < 1.0) <= 12
    assert not errors(caplog)
    await back.close()
    await publisher.close()


# -- (3) a subscriber that never reads -------------------------------------------------------


async def test_a_subscriber_that_never_reads_is_disconnected_at_the_buffer_cap(
    iot_emulator_factory: EmulatorFactory, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    handle = await start(iot_emulator_factory, **FAST_PUBLISHER)
    emulator = handle.emulator
    watcher = await bystander(handle, transport, "big/#")
    assert await watcher.subscribe("$aws/events/presence/disconnected/sleeper", 0) == [0]
    sleeper = await RawConnection.open(emulator, transport)
    await raw_connect(sleeper, "sleeper")
    assert await raw_subscribe(sleeper, ("big/#", 1)) == b"\x01"
    # From here on the sleeper reads nothing.
    publisher = await handle.mqtt_client("big-publisher", "tcp")
    payload = b"x" * 125_000
    before = rss_bytes()
    peak = before
    disconnected = False
    for batch in range(75):  # 1,200 messages of 125 kB: 150 MB
        for _ in range(16):
            publisher.publish_nowait(f"big/{batch}", payload, qos=1)
        # In step with the bystander, so that only the sleeper falls behind.
        async with asyncio.timeout(30):
            for _ in range(16):
                message = await watcher.messages.get()
                while message.topic.startswith("$aws/events"):
                    assert message.topic.endswith("/sleeper")
                    disconnected = True
                    message = await watcher.messages.get()
                assert message.topic == f"big/{batch}" and len(message.payload) == len(payload)
        peak = max(peak, rss_bytes())
    if not disconnected:
        await watcher.message_on("$aws/events/presence/disconnected/sleeper")
    assert "sleeper" not in emulator.broker.iot_sessions
    logged = [r.getMessage() for r in caplog.records if "client_buffer_kib" in r.getMessage()]
    assert len(logged) == 1 and "'sleeper'" in logged[0]
    # 150 MB went through; the sleeper's buffer was capped at 8 MiB (before: +329 MiB).
    assert peak - before < 64 * MIB, f"RSS grew by {(peak - before) / MIB:.0f} MiB"
    await sleeper.close()


# -- (4) the per-connection limits, answered as AWS does -------------------------------------


async def test_nine_filters_in_one_subscribe_close_the_connection(
    iot_emulator_factory: EmulatorFactory, transport: str
) -> None:
    handle = await start(iot_emulator_factory)
    conn = await RawConnection.open(handle.emulator, transport)
    await raw_connect(conn, "greedy")
    assert await raw_subscribe(conn, *((f"eight/{i}", 0) for i in range(8))) == b"\x00" * 8
    await conn.send(subscribe_packet(2, *((f"nine/{i}", 0) for i in range(9))))
    await conn.wait_closed_by_broker()  # no SUBACK
    assert not handle.emulator.broker.topic_subscriptions.match("nine/0")
    await conn.close()


async def test_subscriptions_past_50_on_one_connection_are_refused(
    iot_emulator_factory: EmulatorFactory, transport: str
) -> None:
    handle = await start(iot_emulator_factory)
    client = await handle.mqtt_client("collector", transport)
    codes = [(await client.subscribe(f"many/{i}", 1))[0] for i in range(51)]
    assert codes == [1] * 50 + [0x80]
    await client.publish("many/49", b"kept", qos=1)
    assert (await client.message_on("many/49")).payload == b"kept"


async def test_a_second_connect_with_the_same_client_id_within_a_second_is_refused(
    iot_emulator_factory: EmulatorFactory, transport: str
) -> None:
    handle = await start(iot_emulator_factory)
    first = await handle.mqtt_client("twin", transport)
    assert await first.subscribe("twin/t", 1) == [1]
    second = await RawConnection.open(handle.emulator, transport)
    await second.send(connect_packet("twin"))
    await second.wait_closed_by_broker()  # refused: no CONNACK, no take-over
    await first.publish("twin/t", b"still here", qos=1)
    assert (await first.message_on("twin/t")).payload == b"still here"
    await second.close()


async def test_publishes_over_the_rate_are_dropped_and_others_unaffected(
    iot_emulator_factory: EmulatorFactory, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    handle = await start(iot_emulator_factory, publish_rate=10)
    watcher = await bystander(handle, transport, "flood/#")
    flooder = await RawConnection.open(handle.emulator, transport)
    await raw_connect(flooder, "flooder")
    await flooder.send(b"".join(publish_packet("flood/x", str(i).encode()) for i in range(200)))
    await flooder.send(b"\xc0\x00")  # PINGREQ: answered once the burst is handled
    assert (await flooder.next_frame()).type == codec.PINGRESP
    other = await handle.mqtt_client("honest", transport)
    await other.publish("flood/honest", b"mine", qos=1)
    got = []
    while (message := await watcher.next_message()).topic != "flood/honest":
        got.append(message.payload)
    # One second's worth at most (the bucket's burst), then dropped; in order.
    assert 10 <= len(got) <= 12
    assert got == [str(i).encode() for i in range(len(got))]
    assert message.payload == b"mine"
    assert len([r for r in caplog.records if "publish_rate" in r.getMessage()]) == 1
    await flooder.close()


# -- (5) the offline queue -------------------------------------------------------------------


async def test_the_offline_queue_keeps_max_queued_and_replays_at_the_resend_rate(
    iot_emulator_factory: EmulatorFactory, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    handle = await start(iot_emulator_factory, **FAST_PUBLISHER, connect_rate=0)
    emulator = handle.emulator
    away = await handle.mqtt_client("away", transport, clean_session=False)
    assert await away.subscribe("inbox/away", 1) == [1]
    await away.disconnect()
    publisher = await RawConnection.open(emulator, "tcp")
    await raw_connect(publisher, "publisher")
    await publish_qos1(publisher, "inbox/away", 10_000)
    session = emulator.broker.iot_sessions["away"]
    assert len(session.queued) == 1000
    drops = [r for r in caplog.records if "max_queued_messages" in r.getMessage()]
    assert 1 <= len(drops) <= 3  # once per 10 s with a count, not 9,000 lines
    back = await handle.mqtt_client("away", transport, clean_session=False, connect=False)
    assert await back.connect() == (0, True)
    loop = asyncio.get_running_loop()
    times: list[float] = []
    payloads: list[bytes] = []
    async with asyncio.timeout(30):
        while len(payloads) < 25:
            payloads.append((await back.messages.get()).payload)
            times.append(loop.time())
    # The oldest are kept (AWS drops what exceeds the queue: the new ones), in order.
    assert payloads == [str(i).encode() for i in range(25)]
    # 10 per second: 25 take about 2.4 s, and no more than ~10 in any first second.
    assert times[-1] - times[0] >= 2.0
    assert sum(1 for t in times if t - times[0] < 1.0) <= 12
    assert not errors(caplog)
    await publisher.close()
