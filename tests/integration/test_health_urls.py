"""``/health`` shows the backends at URLs a host can use: with ``advertised_endpoints`` (what
compose sets: the host-published ports), those, while the emulator itself keeps calling the
backends at the addresses it was given (compose: the network's names)."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from tests.integration.conftest import EmulatorStarter

ADVERTISED = {"dynamodb": "http://localhost:8000", "kinesis": "http://localhost:4568"}


async def test_health_shows_the_advertised_backend_urls(start_emulator: EmulatorStarter) -> None:
    emulator = await start_emulator(backend="moto", advertised_endpoints=ADVERTISED)
    url = f"http://127.0.0.1:{emulator.http_port}/health"
    body = await asyncio.to_thread(lambda: json.load(urllib.request.urlopen(url, timeout=10)))
    assert {k: body["backends"][k] for k in ADVERTISED} == ADVERTISED
    assert body["backends"]["kind"] == "moto" and body["backends"]["up"] is True
    for service in ADVERTISED:  # what the rules' actions and the functions use is unchanged
        assert emulator.backends.endpoints[service].startswith("http://127.0.0.1:")


async def test_without_advertised_urls_health_shows_the_backends_own(
    start_emulator: EmulatorStarter,
) -> None:
    emulator = await start_emulator(backend="moto")
    backends = emulator.health()["backends"]
    assert {k: backends[k] for k in ADVERTISED} == emulator.backends.endpoints
