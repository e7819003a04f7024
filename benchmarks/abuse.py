"""Abuse load (issue 12): one attacker per attack kind against the real chat (its rules and
Lambda, rules/) while honest chat clients talk; how many honest messages are lost, their
latency, and the emulator's memory.

    python -m benchmarks.abuse [--seconds 30] [--honest 50] [--rooms 5] [--only KIND ...]

Honest clients are paho-mqtt clients over WebSocket doing what static/chat.js does: they
subscribe to chat/in/<id> and their room's chat/pub/<room>, announce themselves on chat/out
(the Lambda answers with a welcome), then publish {"room","message","name"} on chat/out at
``--rate`` messages per second each; every message is expected at the room's other honest
clients (``lost`` counts the deliveries still missing after a drain). Halfway through, each
announces itself again and asks for the backlog on chat/stream, as the page does: welcomes
and backlogs must come back while the attack runs.

The attackers run in one separate process (so their CPU is not the honest clients'), one
coroutine per kind (``ATTACKS``); each only uses what the chat's browser policy allows a
client (connect, publish on chat/out and chat/stream, subscribe under chat/pub/), or the
HTTP port any client can reach. The emulator's resident memory (main process, /proc) is
read after the honest clients are welcomed, sampled during the attack (peak) and read again
after the attackers left and the honest deliveries drained.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import socket
import statistics
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import harness, report
from benchmarks.load import (
    CONNACK,
    PINGREQ,
    PUBLISH,
    SUBACK,
    encode_connect,
    encode_publish,
    encode_subscribe,
)

CHAT_RULES = harness.REPO / "rules"
SCENARIO = "abuse"
DRAIN_SECONDS = 15.0
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


# -- honest chat clients (paho, one network thread each) ---------------------------------
@dataclass
class Book:
    """What the honest clients sent and received, shared by their threads."""

    members: dict[str, int] = field(default_factory=dict)  # room -> honest clients in it
    sent: dict[str, tuple[int, str, float]] = field(default_factory=dict)  # id -> who, room, t
    seen: set[tuple[int, str]] = field(default_factory=set)  # (receiver, message id)
    latencies: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def expected(self) -> int:
        return sum(self.members[room] - 1 for _, room, _ in self.sent.values())


class Honest:
    """One chat page: chat/in/<id> and its room, an announcement, messages on chat/out."""

    def __init__(self, index: int, room: str, host: str, http_port: int, book: Book) -> None:
        import paho.mqtt.client as mqtt

        self.index, self.room, self.book = index, room, book
        self.name = f"h{index}"
        self.client_id = f"honest-{index}"
        self.seq = 0
        self.sent = 0
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, transport="websockets"
        )
        client.ws_set_options(path="/mqtt")
        client.reconnect_delay_set(1, 2)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self.client = client
        self.host, self.port = host, http_port

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=60)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._count("connect_refused")
            return
        self._count("connects")
        client.subscribe([(f"chat/in/{self.client_id}", 1), (f"chat/pub/{self.room}", 1)])
        self.announce()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        self._count("disconnects")

    def _count(self, key: str) -> None:
        with self.book.changed:
            self.book.counts[key] += 1
            self.book.changed.notify_all()

    def announce(self) -> None:
        self.seq += 1
        body = {"connected": True, "path": f"/{self.room}", "name": self.name, "seq": self.seq}
        self.client.publish("chat/out", json.dumps(body), qos=1)

    def ask_backlog(self) -> None:
        self.client.publish("chat/stream", json.dumps({"sendroom": f"/{self.room}"}), qos=1)

    def say(self) -> None:
        self.sent += 1
        text = f"{self.name}-{self.sent}"
        with self.book.lock:
            self.book.sent[text] = (self.index, self.room, time.monotonic())
        body = {"room": f"/{self.room}", "message": text, "name": self.name}
        self.client.publish("chat/out", json.dumps(body), qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.monotonic()
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        book = self.book
        with book.changed:
            if msg.topic.startswith("chat/in/"):
                book.counts[f"{body.get('type')}_received"] += 1
            else:
                sent = book.sent.get(str(body.get("message")))
                key = (self.index, str(body.get("message")))
                if sent is not None and sent[0] != self.index and key not in book.seen:
                    book.seen.add(key)
                    book.latencies.append(now - sent[2])
            book.changed.notify_all()


def wait_until(book: Book, done: Callable[[], bool], timeout: float) -> bool:
    """Block until ``done()`` (checked under the book's lock at each change) or timeout."""
    deadline = time.monotonic() + timeout
    with book.changed:
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            book.changed.wait(min(left, 0.5))
    return True


# -- the run ------------------------------------------------------------------------------
def rss_kib(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pin_aws_quotas() -> None:
    """Run the emulator under attack with its defaults, AWS's quotas: the harness raises the
    publish quotas for the throughput benchmarks through the environment, this undoes it."""
    from emulator.config import Config

    defaults = Config()
    for name in ("publish_rate", "throughput_kib"):
        if hasattr(defaults, name):
            os.environ[f"EMULATOR_{name.upper()}"] = str(getattr(defaults, name))


def run(args: argparse.Namespace) -> tuple[list[report.Row], dict[str, Any]]:
    kinds = args.only or list(ATTACKS)
    pin_aws_quotas()
    broker = harness.start_emulator(rules=[CHAT_RULES], backend=args.backend)
    honest: list[Honest] = []
    notes: dict[str, Any] = {}
    try:
        assert broker.http_port is not None
        target = Target(
            harness.HOST, broker.port, broker.http_port, args.big_mib, args.slowloris_sockets
        )
        book = Book()
        rooms = [f"room{r}" for r in range(args.rooms)]
        for i in range(args.honest):
            room = rooms[i % len(rooms)]
            book.members[room] = book.members.get(room, 0) + 1
            honest.append(Honest(i, room, harness.HOST, broker.http_port, book))
        for client in honest:
            client.start()
        welcomed = wait_until(
            book, lambda: book.counts["welcome_received"] >= len(honest), args.setup_timeout
        )
        notes["welcomed_before_attack"] = book.counts["welcome_received"]
        if not welcomed:
            sys.stderr.write(f"only {book.counts['welcome_received']} welcomes before the attack\n")
        rss_before = rss_kib(broker.pid)

        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        attacker = ctx.Process(
            target=attacker_worker, args=(target, kinds, args.seconds, results), daemon=True
        )
        before = Counter(book.counts)
        attacker.start()
        peak = rss_before
        start = time.monotonic()
        tick = 1.0 / (len(honest) * args.rate)
        halfway = False
        k = 0
        next_sample = start
        while (now := time.monotonic()) < start + args.seconds:
            if not halfway and now >= start + args.seconds / 2:
                halfway = True
                for client in honest:
                    client.announce()
                    client.ask_backlog()
            due = start + k * tick
            if now < due:
                time.sleep(min(due - now, 0.05))
            else:
                honest[k % len(honest)].say()
                k += 1
            if now >= next_sample:
                peak = max(peak, rss_kib(broker.pid))
                next_sample = now + 0.5
        attack_stats = results.get(timeout=120)
        attacker.join(30)
        drained = wait_until(book, lambda: len(book.seen) >= book.expected(), DRAIN_SECONDS)
        rss_after = rss_kib(broker.pid)
        during = Counter(book.counts)
        during.subtract(before)

        expected = book.expected()
        lat_ms = [x * 1000 for x in book.latencies]
        rows = [
            report_row("honest_clients", len(honest), "clients"),
            report_row("honest_sent", len(book.sent), "msgs"),
            report_row("honest_expected", expected, "deliveries"),
            report_row("honest_lost", expected - len(book.seen), "deliveries"),
            report_row("p50", _round(percentile(lat_ms, 0.50)), "ms"),
            report_row("p99", _round(percentile(lat_ms, 0.99)), "ms"),
            report_row("max", _round(max(lat_ms) if lat_ms else None), "ms"),
            report_row("halfway_welcomes", during["welcome_received"], f"of {len(honest)}"),
            report_row("halfway_backlogs", during["backlog_received"], f"of {len(honest)}"),
            report_row("honest_disconnects", during["disconnects"], "events"),
            report_row("rss_before", rss_before, "KiB"),
            report_row("rss_peak", peak, "KiB"),
            report_row("rss_after", rss_after, "KiB"),
            report_row("rss_hwm", rss_kib(broker.pid, "VmHWM"), "KiB"),
        ]
        notes.update(
            drained=drained,
            attacks=kinds,
            attack_stats=attack_stats,
            emulator_alive=broker.proc.poll() is None,
            median_ms=_round(statistics.median(lat_ms)) if lat_ms else None,
        )
        return rows, notes
    finally:
        for client in honest:
            with contextlib.suppress(Exception):
                client.stop()
        broker.stop()


def report_row(metric: str, value: float | None, unit: str) -> report.Row:
    return {
        "scenario": SCENARIO,
        "broker": "emulator",
        "metric": metric,
        "value": value,
        "unit": unit,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.abuse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--honest", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1.0, help="messages/s per honest client")
    parser.add_argument("--only", action="append", choices=sorted(ATTACKS), help="repeatable")
    parser.add_argument("--backend", default="moto", help="the chat's DynamoDB and Kinesis")
    parser.add_argument("--big-mib", type=int, default=64, help="bigws: WebSocket message MiB")
    parser.add_argument("--slowloris-sockets", type=int, default=500)
    parser.add_argument("--setup-timeout", type=float, default=60)
    parser.add_argument("--no-save", action="store_true", help="do not write results/*.json")
    args = parser.parse_args(argv)
    rows, notes = run(args)
    print(report.table(rows))
    print()
    for key, value in notes.items():
        if key != "attack_stats":
            print(f"{key}: {value}")
    print("attackers:")
    for key, value in sorted(notes["attack_stats"].items()):
        print(f"  {key}: {value}")
    if not args.no_save:
        path = report.write_json(rows, {**vars(args), "notes": notes})
        print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
