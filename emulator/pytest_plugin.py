"""pytest plugin (entry point ``pytest11``): an emulator for your tests, on free ports.

    @pytest.mark.iot_emulator(rules=["rules/"])
    async def test_reply(iot_emulator):
        client = await iot_emulator.mqtt_client()
        await client.subscribe(f"chat/in/{client.client_id}", 1)
        await client.publish("chat/out", '{"connected": true, "path": "/lobby"}', qos=1)
        reply = await client.message_on(f"chat/in/{client.client_id}")
        iot_emulator.boto3_client("iot-data").publish(topic="chat/out", payload=b"{}")

``iot_emulator`` runs the emulator on its own event loop in a background thread, so a test,
synchronous or asynchronous, may block on it: a synchronous boto3 or paho call gets its
answer. (On the test's own loop such a call would wait forever for a loop it blocks.) Options
come from the ``iot_emulator`` marker, or override the ``iot_emulator_settings`` fixture;
relative paths start at pytest's rootdir, and a rule or policy path that does not exist fails
the test at setup. The backend is moto unless the settings say otherwise; no rules are loaded
unless named. For settings known only inside the test (rules in ``tmp_path``) or several
emulators, ``iot_emulators(**settings)`` starts more, each in its own thread.

``iot_emulator_factory`` (awaited) and ``running_emulator`` run the emulator on the test's
loop instead, for tests that await the emulator's own objects (the project's integration
tests do); a blocking call there must go through ``asyncio.to_thread``.

Every emulator stops when its test ends. Its child processes (backends, Lambda workers) each
lead their own process group; a group with a process left after the stop is killed, at
teardown and at interpreter exit (Ctrl-C, a crashed test), so no process outlives the run.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest

from emulator.app import Emulator
from emulator.config import Config, ConfigError, load_config
from emulator.testing import Received, TestClient

log = logging.getLogger(__name__)
T = TypeVar("T")
_ids = itertools.count()

# Free ports, no file watching unless a test asks for it, nothing kept on disk, and no rules
# unless the test names them.
TEST_SETTINGS: Final = {
    "mqtt_port": 0,
    "http_port": 0,
    "mqtt_tls_port": 0,
    "https_port": 0,
    "hot_reload": False,
    "in_memory": True,
    "rules": [],
}
# The fixtures' backend: moto starts in a second and needs no Java or Node.
FIXTURE_SETTINGS: Final = {"backend": "moto"}
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "iot_emulator(**settings): settings for the iot_emulator fixture (rules, backend, ...)",
    )


def emulator_config(settings: Mapping[str, Any], root: Path | None = None) -> Config:
    """The configuration of a test's emulator: ``settings`` over ``TEST_SETTINGS``, relative
    paths from ``root`` (pytest's rootdir), the environment not read. A rule or policy path
    that does not exist is an error now, not a log line and a test that times out later."""
    root = (root or Path.cwd()).resolve()
    merged = {**TEST_SETTINGS, **settings}
    if "node_modules" not in settings and (root / "node_modules").is_dir():
        merged["node_modules"] = root / "node_modules"  # the project's own npm packages
    config = load_config(merged, environ={}, cwd=root)
    for name in ("rules", "policies"):
        for path in getattr(config, name):
            if not path.exists():
                raise ConfigError(
                    f"iot_emulator: {name} path {path} does not exist "
                    f"(relative paths start at pytest's rootdir, {root})"
                )
    return config


# -- child processes ---------------------------------------------------------------------


def process_groups(emulator: Emulator) -> set[int]:
    """The process groups of the emulator's children: each backend and each Lambda worker
    starts a session of its own, so its group ID is its PID and holds its own children."""
    groups = set(emulator.backends.pids())
    for pool in emulator.functions.health().values():
        groups.update(pool["pids"])
    return groups


def live_groups(groups: set[int]) -> set[int]:
    """Those of ``groups`` that still hold a process that is not a zombie (read from /proc)."""
    live: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
            if state != "Z" and int(pgrp) in groups:
                live.add(int(pgrp))
    return live


def kill_groups(groups: set[int]) -> None:
    """SIGKILL each group with a process left: the emulator's stop has already asked them to
    end, so what remains would otherwise outlive the test run."""
    for group in live_groups(groups):
        log.warning("killing process group %d left behind by an emulator", group)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


class _Live:
    """Emulators started and not yet stopped, for the interpreter's exit: an interrupted run
    may skip a teardown, and children in their own sessions would survive it."""

    emulators: Final[dict[int, Emulator]] = {}
    threads: Final[set[EmulatorThread]] = set()
    registered = False

    @classmethod
    def add(cls, emulator: Emulator) -> None:
        if not cls.registered:
            cls.registered = True
            atexit.register(cls.stop_all)
        cls.emulators[id(emulator)] = emulator

    @classmethod
    def stop_all(cls) -> None:
        for runner in list(cls.threads):
            with contextlib.suppress(Exception):
                runner.stop(timeout=5.0)
        # What is left was not stopped (a teardown interrupted): kill what it started.
        for emulator in list(cls.emulators.values()):
            with contextlib.suppress(Exception):
                kill_groups(process_groups(emulator))
        cls.emulators.clear()


# -- the emulator on its own loop ---------------------------------------------------------


class EmulatorThread:
    """One emulator on its own event loop in a daemon thread. The test's thread may then block
    (a synchronous boto3 or paho call) while the emulator answers it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.emulator: Emulator | None = None
        self._groups: set[int] = set()
        self._thread = threading.Thread(target=self._serve, name="iot-emulator", daemon=True)
        self._stopped = False

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> Emulator:
        emulator = Emulator(self.config)
        self.emulator = emulator
        _Live.add(emulator)
        await emulator.start()
        return emulator

    def start(self) -> Emulator:
        _Live.threads.add(self)
        self._thread.start()
        try:
            return self.run(self._start(), START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the emulator, then its loop; kill any of its process groups left."""
        if self._stopped:
            return
        self._stopped = True
        emulator = self.emulator
        try:
            if emulator is not None and self._thread.is_alive():
                self._groups |= process_groups(emulator)
                self.run(emulator.stop(), timeout)
        finally:
            try:
                if not self.loop.is_closed():
                    with contextlib.suppress(RuntimeError):  # closed meanwhile
                        self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(timeout)
            finally:
                # Registered until now: a second Ctrl-C above leaves this to the exit.
                if emulator is not None:
                    kill_groups(self._groups | process_groups(emulator))
                    _Live.emulators.pop(id(emulator), None)
                _Live.threads.discard(self)


@dataclass
class EmulatorHandle:
    """What a test needs: endpoints, MQTT clients, a message recorder, boto3 clients."""

    emulator: Emulator
    host: str = "127.0.0.1"
    runner: EmulatorThread | None = None  # the emulator's own thread, or None: the test's loop
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
            "iot": self.http_url,
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

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine of the emulator's, e.g. ``emulator.rules.wait_idle()``, on its own
        loop and return its result (``iot_emulator``'s threaded emulator; on the test's loop,
        await it instead)."""
        if self.runner is None:
            coro.close()
            raise RuntimeError("this emulator runs on the test's loop: await the coroutine")
        return self.runner.run(coro, timeout)

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
        self._clients.clear()
        self._close_aws_clients()

    def close_now(self) -> None:
        """``close`` without an event loop (the test's may be closed already)."""
        for client in self._clients:
            client.close_now()
        self._clients.clear()
        self._close_aws_clients()

    def _close_aws_clients(self) -> None:
        for client in self._aws_clients:
            client.close()  # botocore: closes the client's connection pool
        self._aws_clients.clear()


@pytest.fixture
def iot_emulator_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for ``iot_emulator`` (the marker's keyword arguments by default)."""
    marker = request.node.get_closest_marker("iot_emulator")
    return dict(marker.kwargs) if marker else {}


@contextlib.asynccontextmanager
async def running_emulator(
    root: Path | None = None, **settings: Any
) -> AsyncIterator[EmulatorHandle]:
    """An emulator on the running loop, started with ``settings`` (``emulator_config``); on
    exit its clients close, it stops, and any process group it leaves is killed."""
    emulator = Emulator(emulator_config(settings, root))
    _Live.add(emulator)
    try:
        await emulator.start()
        handle = EmulatorHandle(emulator)
        try:
            yield handle
        finally:
            await handle.close()
    finally:
        groups = process_groups(emulator)
        try:
            await emulator.stop()
        finally:
            kill_groups(groups | process_groups(emulator))
            _Live.emulators.pop(id(emulator), None)


@contextlib.contextmanager
def emulator_in_thread(root: Path | None = None, **settings: Any) -> Iterator[EmulatorHandle]:
    """An emulator on its own loop in a background thread (``EmulatorThread``), started
    with ``settings`` (``emulator_config``); on exit its clients close and it stops."""
    runner = EmulatorThread(emulator_config(settings, root))
    try:
        handle = EmulatorHandle(runner.start(), runner=runner)
        try:
            yield handle
        finally:
            handle.close_now()
    finally:
        runner.stop()


@contextlib.contextmanager
def _setup_errors() -> Iterator[None]:
    """A configuration error fails the test at setup with its message alone."""
    try:
        yield
    except ConfigError as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None


EmulatorFactory = Callable[..., Awaitable[EmulatorHandle]]
ThreadedEmulatorFactory = Callable[..., EmulatorHandle]


@pytest.fixture
def iot_emulators(request: pytest.FixtureRequest) -> Iterator[ThreadedEmulatorFactory]:
    """Start emulators, each on its own thread, with settings made in the test; all stop at
    teardown, last first."""
    root = request.config.rootpath
    with contextlib.ExitStack() as stack:

        def start(**settings: Any) -> EmulatorHandle:
            with _setup_errors():
                merged = {**FIXTURE_SETTINGS, **settings}
                return stack.enter_context(emulator_in_thread(root, **merged))

        yield start


@pytest.fixture
def iot_emulator(
    iot_emulator_settings: dict[str, Any], iot_emulators: ThreadedEmulatorFactory
) -> EmulatorHandle:
    """An emulator on its own thread, with the marker's settings (see the module's doc)."""
    return iot_emulators(**iot_emulator_settings)


@pytest.fixture
async def iot_emulator_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[EmulatorFactory]:
    """Start emulators on the test's loop with settings made in the test; all stop at
    teardown, last first."""
    root = request.config.rootpath
    async with contextlib.AsyncExitStack() as stack:

        async def start(**settings: Any) -> EmulatorHandle:
            with _setup_errors():
                merged = {**FIXTURE_SETTINGS, **settings}
                return await stack.enter_async_context(running_emulator(root, **merged))

        yield start
