"""Integration fixtures: emulators from the project's own pytest plugin
(``emulator/pytest_plugin.py``, the one users get), real clients over sockets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import pytest

from emulator.app import Emulator
from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle
from emulator.testing import TestClient

# Our tests name the rules they load (none unless they say), and backends start only when
# those rules need them ("auto"), where the plugin's fixtures for users always start moto.
SETTINGS: Final = {"rules": [], "backend": "auto"}

EmulatorStarter = Callable[..., Awaitable[Emulator]]
ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def start_emulator(iot_emulator_factory: EmulatorFactory) -> EmulatorStarter:
    """Start an emulator with ``SETTINGS`` and the test's own; it stops at teardown."""

    async def start(**settings: Any) -> Emulator:
        handle = await iot_emulator_factory(**{**SETTINGS, **settings})
        return handle.emulator

    return start


@pytest.fixture
async def emulator_handle(iot_emulator_factory: EmulatorFactory) -> EmulatorHandle:
    return await iot_emulator_factory(**SETTINGS)


@pytest.fixture
def emulator(emulator_handle: EmulatorHandle) -> Emulator:
    return emulator_handle.emulator


@pytest.fixture(params=["tcp", "websockets"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(emulator_handle: EmulatorHandle, transport: str) -> ClientFactory:
    """Clients on the transport under test (TCP or WebSocket), closed at teardown."""

    async def factory(
        client_id: str | None = None,
        *,
        connect: bool = True,
        via: str | None = None,
        **kwargs: Any,
    ) -> TestClient:
        return await emulator_handle.mqtt_client(
            client_id, via or transport, connect=connect, **kwargs
        )

    return factory
