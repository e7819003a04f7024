"""Builds every part of the emulator and starts/stops them in order.

Start order follows the data flow backwards, so that nothing receives work before the part
it hands work to is ready: services (DynamoDB, Kinesis) -> functions (Lambda) -> rules
engine -> broker -> HTTP server. ``stop()`` unwinds in reverse and collects errors.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulator.broker.broker import IoTBroker
from emulator.config import Config
from emulator.transport.websocket import WebSocketEndpoint

log = logging.getLogger(__name__)

Json = Any


def process_start_time() -> float:
    """When this process started (wall clock), so "ready in" counts imports too."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


class StartupError(Exception):
    """A part could not start; the message says which and why."""


class Emulator:
    """One emulator instance: the broker, the rules, the functions, the HTTP server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started_at = process_start_time()
        self.http_app = web.Application(client_max_size=256 * 1024)
        self.http_app.router.add_get("/health", self._health)
        self.broker = IoTBroker(config)
        self.websocket = WebSocketEndpoint(self.broker)
        self.http_app.router.add_get("/mqtt", self.websocket.handle)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.http_port: int | None = None
        self.mqtt_port: int | None = None
        # (name, stop coroutine) in start order; stop() runs them in reverse.
        self._stoppers: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        # Extra /health sections contributed by parts: name -> callable returning JSON.
        self.health_sections: dict[str, Callable[[], Json]] = {}

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.broker.start()
        except Exception as exc:
            raise StartupError(f"MQTT port {self.config.mqtt_port}: {exc}") from exc
        self.mqtt_port = self.broker.tcp_port
        self._stoppers.append(("broker", self.broker.stop))
        try:
            await self._start_http()
        except OSError as exc:
            raise StartupError(f"HTTP port {self.config.http_port}: {exc.strerror}") from exc

    async def _start_http(self) -> None:
        self._runner = web.AppRunner(self.http_app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.config.host, self.config.http_port)
        await self._site.start()
        server = self._site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http_port
        self._stoppers.append(("http", self._runner.cleanup))

    async def stop(self) -> None:
        errors: list[str] = []
        while self._stoppers:
            name, stopper = self._stoppers.pop()
            try:
                await stopper()
            except Exception as exc:  # stop the rest regardless; report once
                log.exception("error while stopping %s", name)
                errors.append(f"{name}: {exc}")
        if errors:
            log.warning("stopped with errors: %s", "; ".join(errors))

    # -- reporting -----------------------------------------------------------------
    def health(self) -> Json:
        body: dict[str, Json] = {
            "status": "ok",
            "mqtt": {"tcp": self.mqtt_port, "ws": "/mqtt"},
            "http": self.http_port,
        }
        for name, section in self.health_sections.items():
            body[name] = section()
        return body

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(self.health())

    def ready_line(self) -> str:
        host = self.config.host
        took = time.time() - self.started_at
        return (
            f"ready in {took:.2f}s: mqtt://{host}:{self.mqtt_port} "
            f"ws://{host}:{self.http_port}/mqtt http://{host}:{self.http_port}/"
        )
