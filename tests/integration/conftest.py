"""Integration fixtures: a real emulator in-process on free ports, real clients over sockets."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from emulator.app import Emulator
from emulator.config import load_config
from emulator.testing import TestClient

_ids = itertools.count()


async def start_emulator(**settings: Any) -> Emulator:
    flags: dict[str, Any] = {"mqtt_port": 0, "http_port": 0, "rules": [], "hot_reload": False}
    flags.update(settings)
    emulator = Emulator(load_config(flags, environ={}))
    await emulator.start()
    return emulator


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    em = await start_emulator()
    try:
        yield em
    finally:
        await em.stop()


@pytest.fixture(params=["tcp", "websockets"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_client(emulator: Emulator, transport: str) -> AsyncIterator[ClientFactory]:
    """Connected clients on the transport under test (TCP or WebSocket)."""
    clients: list[TestClient] = []

    async def factory(
        client_id: str | None = None,
        *,
        connect: bool = True,
        via: str | None = None,
        **kwargs: Any,
    ) -> TestClient:
        kind = via or transport
        port = emulator.http_port if kind == "websockets" else emulator.mqtt_port
        assert port is not None
        client = TestClient(
            "127.0.0.1", port, client_id or f"test-{next(_ids)}", transport=kind, **kwargs
        )
        clients.append(client)
        if connect:
            await client.connect()
        return client

    yield factory
    await asyncio.gather(*(client.close() for client in clients))
