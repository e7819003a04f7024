"""Load generators: a minimal, fast MQTT 3.1.1 client and the worker processes built on it.

Why a hand-written client: paho or amqtt's client cost more CPU per message than the broker
under test, so they would measure themselves. This one encodes CONNECT/SUBSCRIBE/PUBLISH/
PUBACK/DISCONNECT with precomputed headers and decodes frames from a byte buffer, nothing else.

Each worker runs in its own process (``multiprocessing`` spawn context) and reports one dict
on a result queue. Every loop is bounded by a message count and a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import struct
import time
from collections.abc import Callable
from typing import Any

from emulator.broker.codec import encode_length

Json = Any

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


# -- codec (pure) ----------------------------------------------------------------------
def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def encode_connect(
    client_id: str, keepalive: int = 600, clean: bool = True, version: int = 4
) -> bytes:
    body = _str("MQTT") + bytes([version, 0x02 if clean else 0]) + struct.pack("!H", keepalive)
    if version == 5:
        body += b"\x00"  # no properties
    body += _str(client_id)
    return bytes([CONNECT << 4]) + encode_length(len(body)) + body


def encode_subscribe(packet_id: int, filters: list[str], qos: int, version: int = 4) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" if version == 5 else b"")
    body += b"".join(_str(f) + bytes([qos]) for f in filters)
    return bytes([SUBSCRIBE << 4 | 2]) + encode_length(len(body)) + body


def encode_publish(
    topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, props: bytes | None = None
) -> bytes:
    """``props``: an MQTT 5 property section (None: MQTT 3.1.1)."""
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + (props or b"") + payload
    return bytes([PUBLISH << 4 | qos << 1]) + encode_length(len(body)) + body


def encode_puback(packet_id: int) -> bytes:
    return bytes([PUBACK << 4, 2]) + struct.pack("!H", packet_id)


DISCONNECT_FRAME = bytes([DISCONNECT << 4, 0])


def split_frames(buf: bytearray) -> list[tuple[int, int, bytes]]:
    """Remove complete frames from ``buf``: (type, flags, body) each; partial bytes stay."""
    frames: list[tuple[int, int, bytes]] = []
    pos, size = 0, len(buf)
    while pos + 2 <= size:
        mult, length, i = 1, 0, pos + 1
        while True:
            if i >= size:
                del buf[:pos]
                return frames
            byte = buf[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        if i + length > size:
            break
        frames.append((buf[pos] >> 4, buf[pos] & 0x0F, bytes(buf[i : i + length])))
        pos = i + length
    del buf[:pos]
    return frames


def decode_publish(flags: int, body: bytes, version: int = 4) -> tuple[str, int, int, bytes]:
    """(topic, qos, packet id, payload) of a PUBLISH body (MQTT 5: its properties skipped)."""
    tlen = struct.unpack_from("!H", body)[0]
    topic = body[2 : 2 + tlen].decode()
    qos = (flags >> 1) & 3
    pos = 2 + tlen
    pid = 0
    if qos:
        pid = struct.unpack_from("!H", body, pos)[0]
        pos += 2
    if version == 5:
        length, shift = 0, 0
        while True:
            byte = body[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += length
    return topic, qos, pid, body[pos:]


# -- connection ------------------------------------------------------------------------
OnPublish = Callable[[str, bytes], None]


class Client(asyncio.Protocol):
    """One MQTT connection over TCP (asyncio protocol) or WebSocket (aiohttp)."""

    def __init__(self, on_publish: OnPublish | None = None, version: int = 4) -> None:
        self.on_publish = on_publish
        self.version = version
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.ws: Any = None
        self._session: Any = None
        self._ws_task: asyncio.Task[None] | None = None
        self._waiters: dict[tuple[int, int], asyncio.Future[bytes]] = {}
        self.inflight: set[int] = set()
        self.inflight_free = asyncio.Event()
        self.inflight_free.set()
        self.window = 64
        self.closed = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._ws_out: list[bytes] = []

    # transport glue
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._dispatch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("closed"))

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def _dispatch(self) -> None:
        for kind, flags, body in split_frames(self.buf):
            if kind == PUBLISH:
                topic, qos, pid, payload = decode_publish(flags, body, self.version)
                if qos == 1:
                    self.write(encode_puback(pid))
                if self.on_publish is not None:
                    self.on_publish(topic, payload)
            elif kind == PUBACK:
                pid = struct.unpack_from("!H", body)[0]
                self.inflight.discard(pid)
                if len(self.inflight) < self.window:
                    self.inflight_free.set()
            else:
                key = (kind, struct.unpack_from("!H", body)[0] if kind == SUBACK else 0)
                fut = self._waiters.pop(key, None)
                if fut is not None and not fut.done():
                    fut.set_result(body)

    def write(self, data: bytes) -> None:
        if self.ws is not None:
            self._ws_out.append(data)
            if len(self._ws_out) == 1:
                asyncio.get_running_loop().call_soon(self._flush_ws)
        else:
            assert self.transport is not None
            self.transport.write(data)

    def _flush_ws(self) -> None:
        data, self._ws_out = b"".join(self._ws_out), []
        if data:
            asyncio.ensure_future(self._send_ws(data))

    async def _send_ws(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # closing: nothing to send to
            await self.ws.send_bytes(data)

    async def drain(self) -> None:
        await self._can_write.wait()

    def _expect(self, kind: int, key: int = 0) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[(kind, key)] = fut
        return fut

    async def connect(
        self, host: str, port: int, client_id: str, ws_url: str | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        connack = self._expect(CONNACK)
        if ws_url is None:
            transport, _ = await loop.create_connection(lambda: self, host, port)
            self.transport = transport
        else:
            import aiohttp

            self._session = aiohttp.ClientSession()
            self.ws = await self._session.ws_connect(
                ws_url, protocols=("mqtt",), autoping=True, max_msg_size=0
            )
            self._ws_task = asyncio.ensure_future(self._ws_reader())
        self.write(encode_connect(client_id, version=self.version))
        body = await asyncio.wait_for(connack, 30)
        if len(body) < 2 or body[1] != 0:
            raise ConnectionError(f"CONNACK refused: {body!r}")

    async def _ws_reader(self) -> None:
        import aiohttp

        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self.buf += msg.data
                    self._dispatch()
                else:
                    break
        finally:
            self.connection_lost(None)

    async def subscribe(self, filters: list[str], qos: int = 0, packet_id: int = 1) -> None:
        suback = self._expect(SUBACK, packet_id)
        self.write(encode_subscribe(packet_id, filters, qos, self.version))
        body = await asyncio.wait_for(suback, 60)
        if any(code >= 0x80 for code in body[2:]):
            raise ConnectionError(f"SUBACK refused a filter of {filters[:3]}")

    async def publish_qos1(self, frame_for: Callable[[int], bytes], count: int) -> None:
        """Publish ``count`` QoS 1 messages keeping at most ``window`` unacknowledged."""
        pid = 0
        for _ in range(count):
            while len(self.inflight) >= self.window:
                self.inflight_free.clear()
                await asyncio.wait_for(self.inflight_free.wait(), 30)
            pid = pid % 65535 + 1
            self.inflight.add(pid)
            self.write(frame_for(pid))
        while self.inflight:
            self.inflight_free.clear()
            await asyncio.wait_for(self.inflight_free.wait(), 30)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.write(DISCONNECT_FRAME)
        if self.ws is not None:
            self._flush_ws()
            with contextlib.suppress(Exception):
                await self.ws.close()
            if self._ws_task is not None:
                self._ws_task.cancel()
            await self._session.close()
        elif self.transport is not None:
            self.transport.close()


# -- workers (run in child processes) -------------------------------------------------
def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


def subscriber_worker(
    host: str,
    port: int,
    filters: list[str],
    qos: int,
    expect: int,
    timeout: float,
    ready: Any,
    results: Any,
    latency: bool = False,
    version: int = 4,
) -> None:
    """Subscribe, signal ready, count messages until ``expect`` arrived or ``timeout``."""
    _run(_subscriber(host, port, filters, qos, expect, timeout, ready, results, latency, version))


async def _subscriber(
    host: str,
    port: int,
    filters: list[str],
    qos: int,
    expect: int,
    timeout: float,
    ready: Any,
    results: Any,
    latency: bool,
    version: int = 4,
) -> None:
    done = asyncio.Event()
    state = {"n": 0, "first": 0.0, "last": 0.0}
    lat: list[float] = []

    def on_publish(topic: str, payload: bytes) -> None:
        now = time.monotonic()
        if not state["n"]:
            state["first"] = now
        state["n"] += 1
        state["last"] = now
        if latency:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                lat.append(now - json.loads(payload)["t"])
        if state["n"] >= expect:
            done.set()

    client = Client(on_publish, version)
    await client.connect(host, port, f"bench-sub-{mp.current_process().pid}")
    await client.subscribe(filters, qos)
    ready.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    await client.close()
    results.put({"role": "sub", **state, "latencies": lat})


def publisher_worker(
    host: str,
    port: int,
    topic: str,
    qos: int,
    count: int,
    payload_size: int,
    rate: float | None,
    results: Any,
    json_payload: dict[str, Any] | None = None,
    props: bytes | None = None,
) -> None:
    """Publish ``count`` messages as fast as possible, or at ``rate`` per second; with
    ``props`` (an MQTT 5 property section, ``b"\\x00"`` for none) over MQTT 5."""
    _run(
        _publisher(host, port, topic, qos, count, payload_size, rate, results, json_payload, props)
    )


async def _publisher(
    host: str,
    port: int,
    topic: str,
    qos: int,
    count: int,
    payload_size: int,
    rate: float | None,
    results: Any,
    json_payload: dict[str, Any] | None,
    props: bytes | None = None,
) -> None:
    client = Client(version=4 if props is None else 5)
    await client.connect(host, port, f"bench-pub-{mp.current_process().pid}")
    start = time.monotonic()
    if rate is not None:
        # Paced: each message carries its send time (monotonic clock is system-wide on Linux).
        base = dict(json_payload or {})
        for i in range(count):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            base["t"] = time.monotonic()
            base["i"] = i
            payload = json.dumps(base).encode()
            if qos:
                await client.publish_qos1(
                    lambda pid, p=payload: encode_publish(topic, p, 1, pid, props), 1
                )
            else:
                client.write(encode_publish(topic, payload, props=props))
    elif qos == 0:
        body = json.dumps(json_payload).encode() if json_payload else b"x" * payload_size
        frame = encode_publish(topic, body, props=props)
        batch = frame * 100
        for _ in range(count // 100):
            client.write(batch)
            await client.drain()
            await asyncio.sleep(0)
        for _ in range(count % 100):
            client.write(frame)
    else:
        head = struct.pack("!H", len(topic)) + topic.encode()
        payload = (props or b"") + b"x" * payload_size  # the properties follow the packet id
        prefix = bytes([PUBLISH << 4 | 2]) + encode_length(len(head) + 2 + len(payload)) + head

        await client.publish_qos1(lambda pid: prefix + struct.pack("!H", pid) + payload, count)
    elapsed = time.monotonic() - start
    await client.close()
    results.put({"role": "pub", "sent": count, "elapsed": elapsed})


def noise_worker(host: str, port: int, count: int, ready: Any, results: Any, hold: Any) -> None:
    """Hold ``count`` unrelated subscriptions (``noise/<i>/#``) until ``hold`` is set."""
    _run(_noise(host, port, count, ready, results, hold))


async def _noise(host: str, port: int, count: int, ready: Any, results: Any, hold: Any) -> None:
    client = Client()
    await client.connect(host, port, f"bench-noise-{mp.current_process().pid}")
    start = time.monotonic()
    pid = 0
    for i in range(0, count, 200):
        pid += 1
        await client.subscribe([f"noise/{j}/#" for j in range(i, min(i + 200, count))], 0, pid)
    results.put({"role": "noise", "subscribed": count, "elapsed": time.monotonic() - start})
    ready.set()
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 600
    while not hold.is_set() and time.monotonic() < deadline:
        await loop.run_in_executor(None, hold.wait, 0.5)
    await client.close()


def ws_fanout_worker(
    ws_url: str,
    topic: str,
    clients: int,
    ready: Any,
    results: Any,
    timeout: float,
    idle_only: bool = False,
    hold: Any = None,
) -> None:
    """Open ``clients`` WebSocket MQTT connections subscribed to ``topic``; report arrival
    times of the first message (or, with ``idle_only``, just hold them until ``hold``)."""
    _run(_ws_fanout(ws_url, topic, clients, ready, results, timeout, idle_only, hold))


async def _ws_fanout(
    ws_url: str,
    topic: str,
    clients: int,
    ready: Any,
    results: Any,
    timeout: float,
    idle_only: bool,
    hold: Any,
) -> None:
    arrivals: list[float] = []
    got_all = asyncio.Event()
    conns: list[Client] = []

    def on_publish(_topic: str, payload: bytes) -> None:
        arrivals.append(time.monotonic())
        if len(arrivals) >= clients:
            got_all.set()

    sem = asyncio.Semaphore(50)
    base = f"bench-ws-{mp.current_process().pid}-"

    async def open_one(i: int) -> None:
        async with sem:
            c = Client(on_publish)
            await c.connect("", 0, base + str(i), ws_url=ws_url)
            if not idle_only:
                await c.subscribe([topic], 0)
            conns.append(c)

    await asyncio.gather(*(open_one(i) for i in range(clients)))
    ready.set()
    loop = asyncio.get_running_loop()
    if idle_only:
        deadline = time.monotonic() + timeout
        while not hold.is_set() and time.monotonic() < deadline:
            await loop.run_in_executor(None, hold.wait, 0.5)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(got_all.wait(), timeout)
    results.put({"role": "ws", "clients": len(conns), "arrivals": arrivals})
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


def one_shot_publish(host: str, port: int, topic: str, payload: bytes) -> float:
    """Publish one QoS 0 message from this process; returns its monotonic send time."""

    async def go() -> float:
        c = Client()
        await c.connect(host, port, f"bench-once-{mp.current_process().pid}")
        sent = time.monotonic()
        c.write(encode_publish(topic, payload))
        await c.close()
        return sent

    return float(_run(go()))
