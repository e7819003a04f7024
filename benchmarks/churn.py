"""Churn load (issue 6): concurrent WebSocket clients connect, chat in rooms over QoS 1 and
leave, for a bounded time; every client checks that each of its messages came back
through the republish rule (no QoS 1 message lost). The broker's memory is sampled before,
during and after, and its connection, session and subscription counts must return to 0.

    python -m benchmarks.churn [--clients 1000] [--rooms 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import random
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.load import Client, encode_publish

RULES = Path(__file__).parent / "rules" / "churn"
MESSAGES_PER_CLIENT = 3


async def churn(
    ws_url: str, concurrent: int, rooms: int, seconds: float, prefix: str
) -> dict[str, int]:
    """``concurrent`` client slots, each running client lifetimes back to back until the
    deadline: connect, subscribe to a room, publish, wait for the echoes, disconnect."""
    stats: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    rng = random.Random(prefix)

    async def lifetime(slot: int, generation: int) -> None:
        client_id = f"{prefix}-{slot}-{generation}"
        room = f"room{rng.randrange(rooms)}"
        echoes: dict[str, asyncio.Future[None]] = {}

        def on_publish(topic: str, payload: bytes) -> None:
            stats["received"] += 1
            with contextlib.suppress(ValueError, AttributeError):
                future = echoes.get(json.loads(payload).get("message"))
                if future is not None and not future.done():
                    future.set_result(None)

        client = Client(on_publish)
        try:
            await client.connect("", 0, client_id, ws_url=ws_url)
            stats["connected"] += 1
            await client.subscribe([f"chat/pub/{room}"], 1)
            loop = asyncio.get_running_loop()
            for i in range(MESSAGES_PER_CLIENT):
                text = f"{client_id}:{i}"
                echoes[text] = loop.create_future()
                body = json.dumps({"room": f"/{room}", "message": text}).encode()
                client.inflight.add(i + 1)
                client.write(encode_publish("chat/out", body, 1, i + 1))
                stats["published"] += 1
            try:
                await asyncio.wait_for(asyncio.gather(*echoes.values()), 30)
            except TimeoutError:
                pass
            done = sum(1 for f in echoes.values() if f.done())
            stats["echoed"] += done
            stats["lost"] += len(echoes) - done
        except (ConnectionError, OSError, TimeoutError) as exc:
            stats["errors"] += 1
            stats[f"error:{type(exc).__name__}"] += 1
        finally:
            await client.close()

    async def slot(index: int) -> None:
        await asyncio.sleep(index * 0.002)  # stagger the first wave's handshakes
        generation = 0
        while time.monotonic() < deadline:
            await lifetime(index, generation)
            generation += 1

    await asyncio.gather(*(slot(i) for i in range(concurrent)))
    return dict(stats)


def churn_worker(
    ws_url: str, concurrent: int, rooms: int, seconds: float, prefix: str, results: Any
) -> None:
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    results.put(run(churn(ws_url, concurrent, rooms, seconds, prefix)))


def run_churn(
    ws_url: str, clients: int, rooms: int, seconds: float, processes: int = 2
) -> dict[str, int]:
    """The load from ``processes`` client processes (so the clients' CPU is not the broker's)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    per = clients // processes
    workers = [
        ctx.Process(target=churn_worker, args=(ws_url, per, rooms, seconds, f"churn{i}", results))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    total: Counter[str] = Counter()
    for _ in workers:
        total.update(results.get(timeout=seconds + 120))
    for w in workers:
        w.join(30)
    return dict(total)


def get_json(http_port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{harness.HOST}:{http_port}{path}", timeout=30) as r:
        return dict(json.load(r))


def health(http_port: int) -> dict[str, Any]:
    return get_json(http_port, "/health")


def memory(http_port: int) -> dict[str, Any]:
    """Live Python objects and RSS of the emulator after a full garbage collection."""
    return get_json(http_port, "/debug/memory")


def wait_drained(http_port: int, timeout: float = 60) -> dict[str, Any]:
    """Poll /health until no connection, session or subscription is left (a script, not a test)."""
    end = time.monotonic() + timeout
    while True:
        mqtt = health(http_port)["mqtt"]
        if (mqtt["connections"], mqtt["sessions"], mqtt["subscriptions"]) == (
            0,
            0,
            0,
        ) or time.monotonic() > end:
            return dict(mqtt)
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    broker = harness.start_emulator(rules=[RULES])
    try:
        assert broker.http_port is not None
        ws_url = f"ws://{harness.HOST}:{broker.http_port}/mqtt"
        # Warm up at full size, so the baseline includes the allocator's working set.
        warm = run_churn(ws_url, args.clients, args.rooms, 5)
        wait_drained(broker.http_port)
        baseline = memory(broker.http_port)
        started = time.monotonic()
        stats = run_churn(ws_url, args.clients, args.rooms, args.seconds)
        took = time.monotonic() - started
        drained = wait_drained(broker.http_port)
        after = memory(broker.http_port)
        print(f"warm-up: {warm}")
        print(
            f"churn: {args.clients} concurrent WebSocket clients, {args.rooms} rooms, {args.seconds:.0f} s"
        )
        print(
            f"  client lifetimes: {stats.get('connected', 0)} ({stats.get('connected', 0) / took:.0f}/s)"
        )
        print(
            f"  QoS 1 published: {stats.get('published', 0)}, echoed: {stats.get('echoed', 0)}, lost: {stats.get('lost', 0)}"
        )
        print(
            f"  messages delivered: {stats.get('received', 0)}, client errors: {stats.get('errors', 0)}"
        )
        print(f"  after: {drained}")
        print(
            f"  broker Python objects: baseline {baseline['objects']}, after {after['objects']} "
            f"({after['objects'] - baseline['objects']:+d})"
        )
        before_mib, after_mib = baseline["rss_kib"] / 1024, after["rss_kib"] / 1024
        print(
            f"  broker RSS: baseline {before_mib:.1f} MiB, after {after_mib:.1f} MiB "
            f"({after_mib - before_mib:+.1f})"
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
