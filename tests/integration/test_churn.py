"""A reduced churn load (benchmarks/churn.py runs the full one: 1,000 clients, 50 rooms):
WebSocket clients from another process connect, chat over QoS 1 through the republish
rule and leave, over and over; no message is lost, and once they are gone the broker holds
no connection, session or subscription, and no more live objects than before."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
from typing import Any

from benchmarks.churn import RULES, churn_worker
from emulator.app import Emulator
from tests.integration.conftest import EmulatorStarter


async def run_clients(em: Emulator, clients: int, rooms: int, seconds: float) -> dict[str, int]:
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    url = f"ws://127.0.0.1:{em.http_port}/mqtt"
    worker = ctx.Process(target=churn_worker, args=(url, clients, rooms, seconds, "t", results))
    worker.start()
    stats: dict[str, int] = await asyncio.to_thread(results.get, True, seconds + 90)
    await asyncio.to_thread(worker.join, 30)
    async with asyncio.timeout(30):
        await em.broker.wait_connections(at_most=0)
    return stats


def live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


async def test_churning_websocket_clients_lose_nothing_and_leave_nothing(
    start_emulator: EmulatorStarter,
) -> None:
    em = await start_emulator(rules=[str(RULES)])
    await run_clients(em, clients=200, rooms=10, seconds=2)  # warm-up: caches, pools
    baseline = live_objects()
    stats = await run_clients(em, clients=200, rooms=10, seconds=5)
    assert stats["published"] > 1000
    assert stats.get("errors", 0) == 0
    assert stats["lost"] == 0 and stats["echoed"] == stats["published"]
    assert em.broker.iot_sessions == {}
    assert len(em.broker.topic_subscriptions) == 0
    assert live_objects() <= baseline * 1.05
