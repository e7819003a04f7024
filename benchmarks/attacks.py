"""The attackers of the abuse load (benchmarks/abuse.py) and of the acceptance tests of issue
12 (tests/integration/test_abuse_chat.py): one coroutine per attack kind, each using only
what the chat's browser policy allows a client (connect; publish on chat/out and chat/stream;
subscribe under chat/pub/) or the HTTP port any client reaches, over raw sockets (they
misbehave, so no MQTT library). ``run_attacks`` runs some side by side in a child process
(``attacker_worker``) and says when each is in full effect (``ENGAGED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.load import (
    CONNACK,
    PINGREQ,
    PUBLISH,
    SUBACK,
    encode_connect,
    encode_publish,
    encode_subscribe,
)

Stats = Counter[str]


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    mqtt_port: int
    http_port: int
    big_mib: int = 64
    slowloris_sockets: int = 500


# -- a raw MQTT connection for the attackers (they misbehave, so no library) -------------
async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes] | None:
    """One MQTT frame (type, flags, body), or None at the end of the stream."""
    try:
        head = (await reader.readexactly(1))[0]
        length, mult = 0, 1
        while True:
            byte = (await reader.readexactly(1))[0]
            length += (byte & 0x7F) * mult
            mult *= 128
            if not byte & 0x80:
                break
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return head >> 4, head & 0x0F, body


def _reset_on_close(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN: a storm of short connections would otherwise fill the
    ephemeral port range with TIME_WAIT sockets."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def open_mqtt(
    target: Target, client_id: str, *, clean: bool = True, keepalive: int = 1200
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP MQTT connection past its CONNACK (ConnectionError when refused or closed)."""
    reader, writer = await asyncio.open_connection(target.host, target.mqtt_port)
    _reset_on_close(writer)
    writer.write(encode_connect(client_id, keepalive, clean))
    frame = await read_frame(reader)
    if frame is None or frame[0] != CONNACK or frame[2][1:2] != b"\x00":
        writer.close()
        raise ConnectionError(f"{client_id}: no CONNACK ({frame!r})")
    return reader, writer


async def discard(reader: asyncio.StreamReader, stats: Stats, key: str) -> None:
    """Read and drop everything (counting PUBLISHes), without ever acknowledging."""
    while (frame := await read_frame(reader)) is not None:
        if frame[0] == PUBLISH:
            stats[key] += 1


def close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


# -- the attacks: each runs until cancelled ----------------------------------------------
#
# Each attack counts what it did in ``stats`` and, once its effect is in place, what
# ``ENGAGED`` checks: then a test may start its bystander (tests/integration/
# test_abuse_chat.py runs these against an emulator in the test process).

NOACK_FEEDERS = 8
NOACK_BURST = 8_500  # per feeder: 68,000 deliveries to the subscriber, past 65,535 packet ids


async def _burst(target: Target, client_id: str, topic: str, body: bytes, count: int) -> int:
    """``count`` QoS 0 PUBLISHes on one connection, written as fast as it takes them."""
    _, writer = await open_mqtt(target, client_id)
    try:
        frames = encode_publish(topic, body, 0) * 500
        for _ in range(count // 500):
            writer.write(frames)
            await writer.drain()
    finally:
        close(writer)
    return count // 500 * 500


async def attack_noack(target: Target, stats: Stats) -> None:
    """A QoS 1 subscriber on chat/pub/# that never sends PUBACK, with a persistent session
    (cleanSession=0). Its own feeders publish 68,000 small chat messages (more than 65,535
    packet ids), it waits until no more come, drops without DISCONNECT and comes back, so
    its stored messages are resent; then it reconnects every 10 s, never acknowledging."""
    reader, writer = await open_mqtt(target, "atk-noack", clean=False)
    writer.write(encode_subscribe(1, ["chat/pub/#"], 1))
    listen = asyncio.create_task(discard(reader, stats, "noack_unacked"))
    body = json.dumps({"room": "/atk-noack", "message": "x", "name": "atk"}).encode()
    sent = await asyncio.gather(
        *(
            _burst(target, f"atk-noack-feed-{i}", "chat/out", body, NOACK_BURST)
            for i in range(NOACK_FEEDERS)
        ),
        return_exceptions=True,
    )
    stats["noack_fed"] += sum(n for n in sent if isinstance(n, int))
    with contextlib.suppress(TimeoutError):  # until the deliveries stop (or 10 s)
        async with asyncio.timeout(10):
            last = -1
            while stats["noack_unacked"] != last and not listen.done():
                last = stats["noack_unacked"]
                await asyncio.sleep(0.5)
    listen.cancel()
    close(writer)  # RST: no DISCONNECT, the session stays
    await asyncio.sleep(1.1)  # AWS's 1 CONNECT per second per client ID
    while True:
        writer = None
        try:
            reader, writer = await open_mqtt(target, "atk-noack", clean=False)
            stats["noack_reconnected"] += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await discard(reader, stats, "noack_unacked")
        except OSError:
            stats["noack_refused"] += 1
            stats["noack_reconnected"] += 1
        finally:
            close(writer)
        await asyncio.sleep(1.1)


def _tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of a socket (1 established; anything else: closed)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return int(info[0])


NOREAD_FEEDERS = 4
NOREAD_MESSAGE = 8_000  # bytes of text per chat message


async def attack_noread(target: Target, stats: Stats) -> None:
    """A QoS 1 subscriber on chat/pub/# (client ID atk-noread) that never reads its socket
    (4 KiB receive buffer), and four connections of the same attacker publishing 8 KB chat
    messages to its own room at up to 1 MiB/s each, for the broker to buffer for the first.
    A new subscriber replaces it when the server has dropped it (``noread_seen_closed``)."""
    loop = asyncio.get_running_loop()

    async def subscriber() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, (target.host, target.mqtt_port))
        await loop.sock_sendall(
            sock, encode_connect("atk-noread") + encode_subscribe(1, ["chat/pub/#"], 1)
        )
        stats["noread_connects"] += 1
        return sock

    def closed(sock: socket.socket) -> bool:
        """Whether the server dropped it. The server's FIN waits behind the bytes this
        socket never reads, but a PINGREQ to a socket the server closed is answered with
        RST: then the send fails, or the kernel shows the socket closed."""
        try:
            sock.send(bytes([PINGREQ << 4, 0]))
        except BlockingIOError:
            return False  # our own send buffer is full: the server does not read either
        except OSError:
            return True
        return _tcp_state(sock) != 1

    async def watch() -> None:
        sock = await subscriber()
        try:
            while True:
                await asyncio.sleep(0.5)
                if closed(sock):
                    stats["noread_seen_closed"] += 1
                    sock.close()
                    await asyncio.sleep(1.1)
                    sock = await subscriber()
        finally:
            sock.close()

    text = "x" * NOREAD_MESSAGE
    body = json.dumps({"room": "/atk-noread", "message": text, "name": "atk"}).encode()
    frames = encode_publish("chat/out", body, 0) * 6  # ~48 KB per 50 ms: ~1 MiB/s

    async def feed(index: int) -> None:
        while True:
            writer = None
            try:
                reader, writer = await open_mqtt(target, f"atk-noread-feed-{index}")
                drop = asyncio.create_task(discard(reader, stats, "noread_feed_received"))
                try:
                    while True:
                        writer.write(frames)
                        stats["noread_fed_bytes"] += len(frames)
                        await writer.drain()
                        await asyncio.sleep(0.05)
                finally:
                    drop.cancel()
            except OSError:
                stats["noread_feed_closed"] += 1
            finally:
                close(writer)
            await asyncio.sleep(1.1)

    await asyncio.gather(watch(), *(feed(i) for i in range(NOREAD_FEEDERS)))


async def _flood(target: Target, stats: Stats, client_id: str, topic: str, key: str) -> None:
    """QoS 0 ``{"sendroom": "/lobby"}`` on ``topic`` as fast as the socket takes them."""
    body = json.dumps({"sendroom": "/lobby"}).encode()
    batch, per_batch = encode_publish(topic, body, 0) * 200, 200
    while True:
        writer = None
        try:
            reader, writer = await open_mqtt(target, client_id)
            drop = asyncio.create_task(discard(reader, stats, f"{key}_received"))
            try:
                while True:
                    writer.write(batch)
                    stats[f"{key}_sent"] += per_batch
                    await writer.drain()
                    await asyncio.sleep(0)
            finally:
                drop.cancel()
        except OSError:
            stats[f"{key}_closed"] += 1
        finally:
            close(writer)
        await asyncio.sleep(1.1)


async def attack_sendroom(target: Target, stats: Stats) -> None:
    """Backlog requests on chat/out: each one is a Lambda invocation (ChatLambda rule)."""
    await _flood(target, stats, "atk-sendroom", "chat/out", "sendroom")


async def attack_stream(target: Target, stats: Stats) -> None:
    """Messages on chat/stream: each one is a Kinesis action (ChatStream rule)."""
    await _flood(target, stats, "atk-stream", "chat/stream", "stream")


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


async def attack_bigws(target: Target, stats: Stats) -> None:
    """MQTT over WebSocket whose second WebSocket message is a ``big_mib`` MiB PUBLISH frame
    (the MQTT maximum is 128 KiB: the WebSocket layer should refuse it before buffering it;
    ``bigws_closed_<code>`` counts the close codes, 1009 being "message too big")."""
    import aiohttp

    size = target.big_mib * 1024 * 1024
    topic = b"chat/out"
    head = bytes([PUBLISH << 4]) + _length(size - 5) + struct.pack("!H", len(topic)) + topic
    frame = head + b"x" * (size - len(head))
    url = f"ws://{target.host}:{target.http_port}/mqtt"
    n = 0
    async with aiohttp.ClientSession() as session:
        while True:
            n += 1
            try:
                async with session.ws_connect(url, protocols=("mqtt",), max_msg_size=0) as ws:
                    await ws.send_bytes(encode_connect(f"atk-bigws-{n}"))
                    await ws.receive(timeout=10)  # CONNACK
                    with contextlib.suppress(ConnectionError):  # closed while sending
                        await ws.send_bytes(frame)
                    stats["bigws_sent_mib"] += target.big_mib
                    code = None
                    with contextlib.suppress(TimeoutError):
                        while True:
                            msg = await ws.receive(timeout=10)
                            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                                code = ws.close_code
                                break
                    stats[f"bigws_closed_{code}"] += 1
            except (aiohttp.ClientError, OSError):
                stats["bigws_refused"] += 1
            await asyncio.sleep(1.1)


async def attack_slowloris(target: Target, stats: Stats) -> None:
    """Many HTTP connections sending their request headers one line every 5 s;
    ``slowloris_closed_by_server`` counts those the server gave up on."""

    async def one(index: int) -> None:
        await asyncio.sleep(index * 0.005)
        while True:
            writer = None
            try:
                reader, writer = await asyncio.open_connection(target.host, target.http_port)
                stats["slowloris_opened"] += 1
                stats["slowloris_held"] += 1
                try:
                    writer.write(f"GET /mqtt HTTP/1.1\r\nHost: {target.host}\r\n".encode())
                    while True:
                        try:
                            data = await asyncio.wait_for(reader.read(4096), 5)
                        except TimeoutError:
                            writer.write(b"X-Slow: 1\r\n")
                            await writer.drain()
                            continue
                        if not data:
                            stats["slowloris_closed_by_server"] += 1
                            break
                finally:
                    stats["slowloris_held"] -= 1
            except OSError:
                stats["slowloris_refused"] += 1
            finally:
                close(writer)
            await asyncio.sleep(1)

    await asyncio.gather(*(one(i) for i in range(target.slowloris_sockets)))


async def attack_reconnect(target: Target, stats: Stats) -> None:
    """Two loops connecting with the same client ID, each taking the other's session over,
    up to ~200 CONNECTs per second; ``storm_seconds`` is how long it has run."""
    started = time.monotonic()

    async def loop() -> None:
        while True:
            writer = None
            try:
                _, writer = await open_mqtt(target, "atk-storm")
                stats["storm_accepted"] += 1
            except (OSError, ConnectionError):
                stats["storm_refused"] += 1
            finally:
                close(writer)
            stats["storm_seconds"] = int(time.monotonic() - started) + 1
            await asyncio.sleep(0.01)

    await asyncio.gather(loop(), loop())


async def _subscribe_many(
    target: Target, client_id: str, per_subscribe: int, total: int, stats: Stats
) -> asyncio.StreamWriter:
    """SUBSCRIBEs of ``per_subscribe`` filters until ``total`` filters were asked for."""
    reader, writer = await open_mqtt(target, client_id)
    granted = 0
    for packet_id in range(1, total // per_subscribe + 1):
        base = packet_id * per_subscribe
        filters = [f"chat/pub/atk{base + i}" for i in range(per_subscribe)]
        writer.write(encode_subscribe(packet_id, filters, 1))
        while (frame := await read_frame(reader)) is not None and frame[0] != SUBACK:
            pass
        if frame is None:
            close(writer)
            raise ConnectionResetError(f"closed on a SUBSCRIBE of {per_subscribe} filters")
        codes = frame[2][2:]
        granted += sum(1 for c in codes if c != 0x80)
        stats["filters_refused"] += sum(1 for c in codes if c == 0x80)
        stats["filters_granted_max"] = max(stats["filters_granted_max"], granted)
    return writer


async def attack_filters(target: Target, stats: Stats) -> None:
    """SUBSCRIBEs of 100 filters each, up to 10,000 on one connection; if one gets the
    connection closed (AWS: 8 filters per SUBSCRIBE), 10 SUBSCRIBEs of 8 filters on a new
    one (AWS: 50 subscriptions per connection). Then it holds what it got."""
    writer = None
    try:
        try:
            writer = await _subscribe_many(target, "atk-filters", 100, 10_000, stats)
        except OSError:
            stats["filters_closed_on_100"] += 1
            writer = await _subscribe_many(target, "atk-filters-8", 8, 80, stats)
        stats["filters_done"] += 1
        while True:  # keep the connection (and its subscriptions) alive
            writer.write(bytes([PINGREQ << 4, 0]))
            await asyncio.sleep(5)
    finally:
        close(writer)


Attack = Callable[[Target, Stats], Awaitable[None]]
ATTACKS: dict[str, Attack] = {
    "noack": attack_noack,
    "noread": attack_noread,
    "sendroom": attack_sendroom,
    "stream": attack_stream,
    "bigws": attack_bigws,
    "slowloris": attack_slowloris,
    "reconnect": attack_reconnect,
    "filters": attack_filters,
}

# When each attack is in full effect (the figures: 20,000 sendroom requests in a
# second, 30,000 chat/stream messages; every slow socket given up on by the server).
ENGAGED: dict[str, Callable[[Target, Stats], bool]] = {
    "noack": lambda t, s: s["noack_reconnected"] >= 1,
    "noread": lambda t, s: s["noread_seen_closed"] >= 1,
    "sendroom": lambda t, s: s["sendroom_sent"] >= 20_000,
    "stream": lambda t, s: s["stream_sent"] >= 30_000,
    "bigws": lambda t, s: any(k.startswith(("bigws_closed", "bigws_refused")) for k in s),
    "slowloris": lambda t, s: s["slowloris_closed_by_server"] >= t.slowloris_sockets,
    "reconnect": lambda t, s: s["storm_accepted"] + s["storm_refused"] >= 100,
    "filters": lambda t, s: s["filters_done"] >= 1,
}


async def run_attacks(
    target: Target, kinds: list[str], seconds: float, engaged: Any = None
) -> dict[str, int]:
    """The named attacks side by side for ``seconds``; their counters. ``engaged`` (a
    queue) gets ("progress", counters) every second until every attack is in effect, then
    ("engaged", counters) once."""
    stats: Stats = Counter()

    async def guarded(kind: str) -> None:
        try:
            await ATTACKS[kind](target, stats)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one broken attack must not stop the others
            stats[f"{kind}_crashed:{type(exc).__name__}:{exc}"[:120]] += 1

    tasks = [asyncio.create_task(guarded(kind)) for kind in kinds]
    deadline = time.monotonic() + seconds
    next_progress = time.monotonic() + 1
    while (now := time.monotonic()) < deadline:
        if engaged is not None:
            if all(ENGAGED[kind](target, stats) for kind in kinds):
                engaged.put(("engaged", dict(stats)))
                engaged = None
            elif now >= next_progress:
                engaged.put(("progress", dict(stats)))
                next_progress = now + 1
        await asyncio.sleep(0.05)
    snapshot = dict(stats)  # gauges (slowloris_held) as the attack ends, not after teardown
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return snapshot


def attacker_worker(
    target: Target, kinds: list[str], seconds: float, results: Any, engaged: Any = None
) -> None:
    """A child process's entry point: the attacks, then their counters on ``results``."""
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    results.put(run(run_attacks(target, kinds, seconds, engaged)))
