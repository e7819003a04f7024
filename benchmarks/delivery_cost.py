"""CPU cost per message of the broker's delivery path, in-process: no sockets, no clients.

Feeds PUBLISH frames to a real connection (``MqttProtocol`` and its driver's ``apply``) of
a real ``IoTBroker`` with the real rules engine; both clients connect and subscribe with
real packets over in-memory links, and the subscriber's link only counts writes. Two paths:

- ``pass``: a client's PUBLISH on ``pt`` delivered to one subscriber;
- ``chat``: a PUBLISH on ``chat/out`` through benchmarks/rules/chat (the republish rule)
  delivered on ``chat/pub/r1``: two publishes, a JSON parse, the SQL, a JSON encode;
- ``pass5``: ``pass`` with MQTT 5 clients (a PUBLISH without properties);
- ``props5``: ``pass5`` with a content type and two user properties, kept end to end.

The socket scenarios (``python -m benchmarks``) include the kernel and the load generators;
this one isolates the Python work, for profiling (``--profile`` prints cProfile's top).

    python -m benchmarks.delivery_cost [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

from benchmarks.scenarios import RULES
from emulator.actions.base import ActionTargets
from emulator.broker import codec, codec5
from emulator.broker import properties as p5
from emulator.broker.broker import IoTBroker
from emulator.broker.connection import Connection
from emulator.broker.protocol import MqttProtocol
from emulator.clock import now_ms
from emulator.config import Config
from emulator.project.loader import load_project
from emulator.rules.engine import RulesEngine
from emulator.testing import connect_packet, mqtt_string
from emulator.transport.memory import MemoryLink, link_pair

BATCH = 100  # frames per loop turn, as one socket read would bring
PATHS = ("pass", "chat", "pass5", "props5")
MESSAGES = 100_000
ROUNDS = 7


class CountingLink(MemoryLink):
    """A subscriber's link that only counts what the broker writes to it."""

    __slots__ = ("writes",)

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1


def _publish_frame(topic: str, payload: bytes) -> bytes:
    body = mqtt_string(topic) + payload
    return bytes([codec.PUBLISH << 4]) + codec.encode_length(len(body)) + body


def _subscribe_frame(topic_filter: str) -> bytes:
    body = b"\x00\x01" + mqtt_string(topic_filter) + b"\x00"
    return bytes([(codec.SUBSCRIBE << 4) | 0x02]) + codec.encode_length(len(body)) + body


def _connect5(client_id: str) -> bytes:
    body = mqtt_string("MQTT") + b"\x05\x02\x02\x58\x00" + mqtt_string(client_id)
    return bytes([codec.CONNECT << 4]) + codec.encode_length(len(body)) + body


PROPS5 = {p5.CONTENT_TYPE: "application/json", p5.USER_PROPERTY: (("k", "v"), ("app", "bench"))}


def _connect(broker: IoTBroker, client_id: str, link: MemoryLink, v5: bool = False) -> Connection:
    """A connection of ``broker`` after its CONNECT, driven by hand (no reader task)."""
    protocol = MqttProtocol(broker.state, broker.publish_check, link, lambda: client_id, now_ms())
    conn = Connection(link, protocol, broker)
    packet = _connect5(client_id) if v5 else connect_packet(client_id)
    conn.apply(protocol.receive(packet, now_ms()))
    return conn


async def measure(
    path: str, profile: bool = False, rounds: int = ROUNDS, messages: int = MESSAGES
) -> float:
    """Best microseconds per message over ``rounds`` runs of ``messages``."""
    # The quotas are checked (their cost is measured) but not hit: one publisher sends it all.
    broker = IoTBroker(Config(publish_rate=10**9, throughput_kib=10**9))
    engine = RulesEngine(ActionTargets(publish=broker.publish))
    await engine.start()
    engine.load(load_project([RULES / "chat"]))
    broker.set_on_message(engine.handle)
    topic, delivered_on = ("chat/out", "chat/pub/r1") if path == "chat" else ("pt", "pt")
    v5 = path in ("pass5", "props5")
    sub_link = CountingLink()
    sub = _connect(broker, "sub", sub_link, v5)
    subscribe = _subscribe_frame(delivered_on)
    if v5:  # MQTT 5's SUBSCRIBE has a property length before its filters
        subscribe = subscribe[:2] + b"\x00\x01\x00" + subscribe[4:]
        subscribe = subscribe[:1] + codec.encode_length(len(subscribe) - 2) + subscribe[2:]
    sub.apply(sub.protocol.receive(subscribe, now_ms()))
    _, pub_link = link_pair()
    pub = _connect(broker, "pub", pub_link, v5)
    protocol = pub.protocol
    payload = b'{"room": "/r1", "message": "hello"}'
    if v5:
        props = p5.encode(PROPS5 if path == "props5" else {})
        frame = codec5.encode_publish(topic.encode(), payload, 0, False, 0, False, props)
    else:
        frame = _publish_frame(topic, payload)
    batch = frame * BATCH
    before = sub_link.writes

    async def run(n: int) -> None:
        for _ in range(n // BATCH):
            pub.apply(protocol.receive(batch, now_ms()))
            await asyncio.sleep(0)  # the republish flush runs on the next loop turn

    await run(messages // 5)  # warm-up: caches, allocator
    profiler = cProfile.Profile() if profile else None
    best = float("inf")
    for _ in range(1 if profile else rounds):
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        await run(messages)
        if profiler:
            profiler.disable()
        best = min(best, time.perf_counter() - start)
    await engine.stop()
    assert sub_link.writes - before >= messages, "the subscriber did not get every message"
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return best / messages * 1e6


def alternated(rounds: int = 5, messages: int = 50_000) -> tuple[float, float]:
    """Best pass and chat microseconds per message over ``rounds`` runs of each, taken in
    turn (pass, chat, pass, ...): a slow moment of the machine, which can last seconds
    here, then lands on both paths alike instead of on all the runs of one of them."""
    best = {"pass": float("inf"), "chat": float("inf")}
    for _ in range(rounds):
        for path in best:
            best[path] = min(best[path], asyncio.run(measure(path, rounds=1, messages=messages)))
    return best["pass"], best["chat"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="cProfile one run of each")
    args = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    costs = {path: run(measure(path, args.profile)) for path in PATHS}
    for path, cost in costs.items():
        print(f"{path:5} {cost:6.2f} us/message")
    print(
        f"chat / pass cost: {costs['chat'] / costs['pass']:.2f}x (a ratio of 2.0 is 0.5x the rate)"
    )


if __name__ == "__main__":
    main()
