"""CPU cost per message of the broker's delivery path, in-process: no sockets, no clients.

Feeds PUBLISH frames to a real ``ClientConnection`` of a real ``IoTBroker`` with the real
rules engine; the subscriber's link only counts writes. Two paths:

- ``pass``: a client's PUBLISH on ``pt`` delivered to one subscriber;
- ``chat``: a PUBLISH on ``chat/out`` through benchmarks/rules/chat (the republish rule)
  delivered on ``chat/pub/r1``: two publishes, a JSON parse, the SQL, a JSON encode.

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
from emulator.broker import codec
from emulator.broker.auth import ClientIdentity
from emulator.broker.broker import IoTBroker
from emulator.broker.connection import ClientConnection
from emulator.broker.sessions import Session
from emulator.config import Config
from emulator.project.loader import load_project
from emulator.rules.engine import RulesEngine

BATCH = 100  # frames per loop turn, as one socket read would bring
MESSAGES = 100_000
ROUNDS = 7


class CountingLink:
    """A link that only counts what the broker writes to it."""

    peer_ip = "127.0.0.1"
    peer_port = 0
    transport_name = "memory"

    def __init__(self) -> None:
        self.writes = 0

    async def read(self) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        self.writes += 1

    def buffered(self) -> int:
        return 0

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


def _publish_frame(topic: str, payload: bytes) -> bytes:
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + payload
    return bytes([codec.PUBLISH << 4]) + codec.encode_length(len(body)) + body


async def measure(
    path: str, profile: bool = False, rounds: int = ROUNDS, messages: int = MESSAGES
) -> float:
    """Best microseconds per message over ``rounds`` runs of ``messages``."""
    broker = IoTBroker(Config())
    engine = RulesEngine(ActionTargets(publish=broker.publish))
    await engine.start()
    engine.load(load_project([RULES / "chat"]))
    broker.set_on_message(engine.handle)
    topic, delivered_on = ("chat/out", "chat/pub/r1") if path == "chat" else ("pt", "pt")
    sub = Session("sub", True)
    sub.link = CountingLink()
    broker.iot_sessions["sub"] = sub
    broker.topic_subscriptions.add(delivered_on, "sub", 0)
    sub.subscriptions[delivered_on] = 0
    pub = Session("pub", True)
    pub.link = CountingLink()
    broker.iot_sessions["pub"] = pub
    conn = ClientConnection(broker, pub.link)
    conn.session = pub
    conn.identity = ClientIdentity("pub", "pub", "127.0.0.1")
    batch = _publish_frame(topic, b'{"room": "/r1", "message": "hello"}') * BATCH

    async def run(n: int) -> None:
        for _ in range(n // BATCH):
            for frame in conn.frames.feed(batch):
                conn._handle(frame)
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
    assert sub.link.writes >= messages, "the subscriber did not get every message"
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return best / messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="cProfile one run of each")
    args = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    costs = {path: run(measure(path, args.profile)) for path in ("pass", "chat")}
    for path, cost in costs.items():
        print(f"{path:5} {cost:6.2f} us/message")
    print(
        f"chat / pass cost: {costs['chat'] / costs['pass']:.2f}x (a ratio of 2.0 is 0.5x the rate)"
    )


if __name__ == "__main__":
    main()
