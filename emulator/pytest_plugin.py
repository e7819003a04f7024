"""pytest plugin (entry point ``pytest11``): run the emulator in-process for your tests.

    @pytest.mark.iot_emulator(rules=["rules/"], backend="moto")
    async def test_reply(iot_emulator):
        client = await iot_emulator.mqtt_client()
        await client.subscribe(f"chat/in/{client.client_id}", 1)
        await client.publish("chat/out", '{"connected": true, "path": "/lobby"}', qos=1)
        reply = await client.message_on(f"chat/in/{client.client_id}")
        table = iot_emulator.boto3_client("dynamodb")

The emulator listens on free ports and stops when the test ends. Options come from the
``iot_emulator`` marker, or override the ``iot_emulator_settings`` fixture. For settings
known only inside the test (rules in ``tmp_path``) or several emulators, use the
``iot_emulator_factory`` fixture:

    async def test_my_rules(iot_emulator_factory, tmp_path):
        iot = await iot_emulator_factory(rules=[str(tmp_path)])

Everything here (and the project's own integration tests) starts emulators through
``running_emulator``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

from emulator.app import Emulator
from emulator.config import load_config
from emulator.testing import Received, TestClient

_ids = itertools.count()

# Free ports, no file watching unless a test asks for it, and nothing kept on disk.
TEST_SETTINGS: Final = {"mqtt_port": 0, "http_port": 0, "hot_reload": False, "in_memory": True}
# The fixtures' backend: moto starts in a second and needs no Java or Node.
FIXTURE_SETTINGS: Final = {"backend": "moto"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "iot_emulator(**settings): settings for the iot_emulator fixture (rules, backend, ...)",
    )


@dataclass
class EmulatorHandle:
    """What a test needs: endpoints, MQTT clients, a message recorder, boto3 clients."""

    emulator: Emulator
    host: str = "127.0.0.1"
    _clients: list[TestClient] = field(default_factory=list)
    _aws_clients: list[Any] = field(default_factory=list)
    _recorder: TestClient | None = None

    @property
    def mqtt_port(self) -> int:
        assert self.emulator.mqtt_port is not None
        return self.emulator.mqtt_port

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.emulator.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.emulator.http_port}/mqtt"

    @property
    def endpoints(self) -> dict[str, str]:
        return {
            **self.emulator.backends.endpoints,
            "iot-data": self.http_url,
            "lambda": self.http_url,
        }

    async def mqtt_client(
        self,
        client_id: str | None = None,
        transport: str = "tcp",
        *,
        connect: bool = True,
        **kwargs: Any,
    ) -> TestClient:
        """A paho client (TCP or ``websockets``), connected unless ``connect=False``,
        closed at teardown."""
        port = self.emulator.http_port if transport == "websockets" else self.mqtt_port
        assert port is not None
        client = TestClient(
            self.host, port, client_id or f"pytest-{next(_ids)}", transport=transport, **kwargs
        )
        self._clients.append(client)
        if connect:
            await client.connect()
        return client

    async def wait_for_message(self, topic_filter: str, timeout: float = 10.0) -> Received:
        """The next message matching ``topic_filter`` published after this call subscribes.
        For messages you expect later, subscribe first with ``mqtt_client`` instead."""
        client = await self.mqtt_client()
        await client.subscribe(topic_filter, 1)
        return await client.next_message(timeout)

    def boto3_client(self, service: str) -> Any:
        """A boto3 client for dynamodb, kinesis, lambda or iot-data, pointed at the emulator,
        closed at teardown (its kept-alive connections would otherwise outlive the test)."""
        import boto3

        key = {"iot-data": "iot-data", "lambda": "lambda"}.get(service, service)
        client = boto3.client(
            service,
            endpoint_url=self.endpoints[key],
            region_name=self.emulator.config.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        self._aws_clients.append(client)
        return client

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._clients), return_exceptions=True)
        for client in self._aws_clients:
            client.close()  # botocore: closes the client's connection pool
        self._aws_clients.clear()


@pytest.fixture
def iot_emulator_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for ``iot_emulator`` (the marker's keyword arguments by default)."""
    marker = request.node.get_closest_marker("iot_emulator")
    return dict(marker.kwargs) if marker else {}


@contextlib.asynccontextmanager
async def running_emulator(**settings: Any) -> AsyncIterator[EmulatorHandle]:
    """An emulator started with ``settings`` over ``TEST_SETTINGS``; on exit its clients
    close and it stops. The environment is not read: a test sees only its own settings."""
    emulator = Emulator(load_config({**TEST_SETTINGS, **settings}, environ={}))
    await emulator.start()
    handle = EmulatorHandle(emulator)
    try:
        yield handle
    finally:
        await handle.close()
        await emulator.stop()


EmulatorFactory = Callable[..., Awaitable[EmulatorHandle]]


@pytest.fixture
async def iot_emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """Start emulators with settings made in the test; all stop at teardown, last first."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**settings: Any) -> EmulatorHandle:
            merged = {**FIXTURE_SETTINGS, **settings}
            return await stack.enter_async_context(running_emulator(**merged))

        yield start


@pytest.fixture
async def iot_emulator(
    iot_emulator_settings: dict[str, Any], iot_emulator_factory: EmulatorFactory
) -> EmulatorHandle:
    return await iot_emulator_factory(**iot_emulator_settings)
