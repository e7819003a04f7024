"""What one open console costs per message: ``benchmarks.delivery_cost``'s two paths
(``pass``: a PUBLISH delivered to one subscriber; ``chat``: through the republish rule),
with the console's taps installed and one viewer attached, whose events are turned into
the JSON the page receives once per loop turn, as ``emulator/console/server.py`` does
(only the socket write is left out).

With no console open nothing is tapped (emulator/observe.py), so that path is
``delivery_cost``'s own, measured by ``benchmarks.instructions``.

    python -m benchmarks.console_cost                 # microseconds per message
    python -m benchmarks.console_cost --instructions  # callgrind instructions per message
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.delivery_cost import BATCH, CountingLink, _connect, _publish_frame, _subscribe_frame
from benchmarks.scenarios import RULES
from emulator.actions.base import ActionTargets
from emulator.broker.broker import IoTBroker
from emulator.clock import now_ms
from emulator.config import Config
from emulator.console.taps import ConsoleTaps
from emulator.console.views import dumps
from emulator.functions.service import FunctionService
from emulator.observe import ObserverHub
from emulator.project.loader import load_project
from emulator.rules.engine import RulesEngine
from emulator.transport.memory import link_pair

REPO = Path(__file__).resolve().parent.parent
MESSAGES = 50_000
ROUNDS = 5


async def measure(path: str, rounds: int = ROUNDS, messages: int = MESSAGES) -> float:
    """Best microseconds per message with one console open."""
    config = Config(publish_rate=10**9, throughput_kib=10**9)
    broker = IoTBroker(config)
    engine = RulesEngine(ActionTargets(publish=broker.publish))
    await engine.start()
    engine.load(load_project([RULES / "chat"]))
    broker.set_on_message(engine.handle)
    hub = ObserverHub()
    ConsoleTaps(hub, broker, engine, FunctionService(config, dict))
    loop = asyncio.get_running_loop()
    sent = [0]
    scheduled = [False]

    def drain() -> None:  # the console's writer: one JSON batch per loop turn
        scheduled[0] = False
        events, _ = viewer.take()
        sent[0] += len(dumps(events))

    def wake() -> None:
        if not scheduled[0]:
            scheduled[0] = True
            loop.call_soon(drain)

    viewer = hub.attach(wake, limit=10**6)
    topic, delivered_on = ("chat/out", "chat/pub/r1") if path == "chat" else ("pt", "pt")
    sub_link = CountingLink()
    sub = _connect(broker, "sub", sub_link)
    sub.apply(sub.protocol.receive(_subscribe_frame(delivered_on), now_ms()))
    _, pub_link = link_pair()
    pub = _connect(broker, "pub", pub_link)
    protocol = pub.protocol
    batch = _publish_frame(topic, b'{"room": "/r1", "message": "hello"}') * BATCH
    before = sub_link.writes

    async def run(n: int) -> None:
        for _ in range(n // BATCH):
            pub.apply(protocol.receive(batch, now_ms()))
            await asyncio.sleep(0)  # the republish flush and the viewer's drain
            await asyncio.sleep(0)

    await run(messages // 5)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        await run(messages)
        best = min(best, time.perf_counter() - start)
    await engine.stop()
    assert sub_link.writes - before >= messages, "the subscriber did not get every message"
    assert sent[0] > 0, "the console received nothing"
    return best / messages * 1e6


CHILD = """
import asyncio, sys
from benchmarks.console_cost import measure
asyncio.run(measure(sys.argv[1], rounds=1, messages=int(sys.argv[2])))
"""


def instructions(path: str, messages: int) -> int:
    """Instructions of one child run under callgrind (as benchmarks/instructions.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
            + ["-c", CHILD, path, str(messages)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"},
            check=True,
            capture_output=True,
        )
        match = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert match, "callgrind wrote no summary"
        return int(match.group(1))


def per_message(path: str, messages: int) -> float:
    # the child warms up with a fifth of the messages, as delivery_cost does
    return (instructions(path, 2 * messages) - instructions(path, messages)) / (messages * 1.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    parser.add_argument("--messages", type=int, default=2000, help="with --instructions")
    args = parser.parse_args()
    for path in ("pass", "chat"):
        if args.instructions:
            cost = per_message(path, args.messages)
            print(f"{path:5} {cost:9,.0f} instructions/message with one console open")
        else:
            print(f"{path:5} {asyncio.run(measure(path)):6.2f} us/message with one console open")


if __name__ == "__main__":
    main()
