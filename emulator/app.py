"""Builds every part of the emulator and starts/stops them in order.

Start order follows the data flow backwards, so that nothing receives work before the part
it hands work to is ready: services (DynamoDB, Kinesis) -> functions (Lambda) -> rules
engine -> broker -> HTTP server. ``stop()`` unwinds in reverse and collects errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulator.actions.base import ActionTargets
from emulator.broker.broker import IoTBroker
from emulator.broker.policy import IdentityAuthorizer, PolicyError, PolicySet
from emulator.broker.store import BrokerStore, DataDirInUse
from emulator.clock import now_ms
from emulator.config import HTTPS_PORT, MQTT_TLS_PORT, Config
from emulator.console.server import Console
from emulator.controlplane.service import ControlPlane
from emulator.dataplane.exceptions import RequestEntityTooLarge
from emulator.dataplane.urls import add_routes as add_dataplane_routes
from emulator.functions.invoke_api import RequestTooLarge
from emulator.functions.invoke_api import add_routes as add_invoke_routes
from emulator.functions.service import LOCAL_CREDENTIALS, FunctionService
from emulator.pollers.kinesis import KinesisPoller
from emulator.project.loader import load_project
from emulator.project.model import Project, RuleSpec
from emulator.project.policy_files import load_policy_files
from emulator.project.watch import RuleWatcher
from emulator.rules.engine import RulesEngine
from emulator.services.backends import BackendError, Backends
from emulator.tasks import canceller
from emulator.transport.http_guard import (
    PRINCIPAL,
    ConnectionGuard,
    HttpGuard,
    OriginPolicy,
    SignedRoute,
)
from emulator.transport.tcp import TcpListener
from emulator.transport.tls import TlsListener
from emulator.transport.websocket import WebSocketEndpoint
from emulator.web import add_routes as add_web_routes
from emulator.web import page_handler as web_page

log = logging.getLogger(__name__)

Json = Any


def process_start_time() -> float:
    """When this process started (wall clock), so "ready in" counts imports too.

    Both figures are taken relative to boot (/proc/uptime and the start time in
    /proc/self/stat, in clock ticks), so there is no whole-second rounding of boot time.
    """
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def worker_credentials(config: Config) -> tuple[str, str]:
    """What the Lambda workers sign their calls to the emulator with: with ``credentials``
    configured (SigV4 required), a random key pair made for this process, which the HTTP
    guard accepts beside the configured ones; otherwise the fixed local pair."""
    if not config.credentials:
        return LOCAL_CREDENTIALS
    return "ASIALOCALWORKER" + secrets.token_hex(4).upper(), secrets.token_urlsafe(30)


def make_http_guard(config: Config, workers: tuple[str, str]) -> HttpGuard:
    """The HTTP port's guard: SigV4 on the AWS APIs (as AWS signs them: boto3's iot-data
    client as ``iotdata``, lambda as ``lambda``; WebSocket URLs as ``iotdevicegateway``)."""
    credentials = dict(config.credentials)
    if credentials:
        credentials[workers[0]] = workers[1]
    routes = (
        SignedRoute("/topics", "iotdata", RequestEntityTooLarge),
        SignedRoute("/retainedMessage", "iotdata", RequestEntityTooLarge),
        SignedRoute("/2015-03-31/functions", "lambda", RequestTooLarge),
        SignedRoute("/mqtt", "iotdevicegateway"),
        *(SignedRoute(prefix, "iot") for prefix in CONTROL_PLANE_PATHS),
    )
    policy = OriginPolicy(config.host, config.allowed_hosts, config.allowed_origins)
    return HttpGuard(policy, credentials, config.region, routes)


# The iot control plane's paths (emulator/controlplane/urls.py), signed as ``iot``.
CONTROL_PLANE_PATHS = (
    "/endpoint",
    "/keys-and-certificate",
    "/certificates",
    "/certificate",
    "/policies",
    "/target-policies",
    "/attached-policies",
    "/policy-targets",
    "/things",
    "/test-authorization",
    "/rules",
)


class StartupError(Exception):
    """A part could not start; the message says which and why."""


class Emulator:
    """One emulator instance: the broker, the rules, the functions, the HTTP server."""

    def __init__(self, config: Config, backends: Backends | None = None) -> None:
        self.config = config
        self.started_at = process_start_time()
        self.worker_credentials = worker_credentials(config)
        self.http_guard = make_http_guard(config, self.worker_credentials)
        self.http_app = web.Application(
            client_max_size=256 * 1024, middlewares=[self.http_guard.middleware]
        )
        self.http_app.router.add_get("/health", self._health)
        self.http_app.router.add_get("/debug/memory", self._memory)
        self.backends = backends or Backends(config)
        self.functions = FunctionService(
            config, self._endpoints, worker_credentials=self.worker_credentials
        )
        self.targets = ActionTargets()
        self.rules = RulesEngine(
            self.targets,
            config.max_hops,
            config.account_id,
            per_client=config.action_queue_per_client,
        )
        self.broker = IoTBroker(config, on_message=self.rules.handle, on_ingest=self.rules.ingest)
        self.targets.publish = self.broker.publish
        self.targets.functions = self.functions
        self.mqtt_listener = TcpListener(self.broker.serve_link, config.host, config.mqtt_port)
        self.websocket = WebSocketEndpoint(self.broker.serve_link, self._authenticate_websocket)
        self.http_app.router.add_get("/mqtt", self.websocket.handle)
        # The HTTP Publish goes through the broker's own check, the one MQTT PUBLISH uses.
        self.dataplane = add_dataplane_routes(
            self.http_app, self.broker, self.broker.publish_check, now_ms
        )
        add_invoke_routes(self.http_app, self.functions)
        # The iot control plane (device identity, policies, topic rules) and its CA.
        self.controlplane = ControlPlane(
            config.region,
            config.account_id,
            config.kept_in,
            (config.host, *config.allowed_hosts),
            self._file_rules,
        )
        self.controlplane.add_routes(self.http_app, web_page(config.static_dir))
        self.controlplane.on_rules_change = self._load_rules
        self.controlplane.on_registry_change = self._registry_changed
        self.targets.registry = self.controlplane.registry_data
        self.file_policies: PolicySet | None = None
        self.identity_authorizer: IdentityAuthorizer | None = None
        self._installed_authorizer: IdentityAuthorizer | PolicySet | None = None
        self.mqtt_tls_listener: TlsListener | None = None
        self._https_server: asyncio.Server | None = None
        # The live console (/console), before the chat page's catch-all room routes.
        self.console = Console(self, self.http_guard.policy, config.region, config.account_id)
        self.console.add_routes(self.http_app)
        add_web_routes(self.http_app, config.static_dir, config.node_modules)
        self.project = Project()
        self.store: BrokerStore | None = None  # with a data directory
        self.auth_state = "open (no IoT policies loaded)"
        self.watcher: RuleWatcher | None = None
        self._runner: web.AppRunner | None = None
        self._http_server: asyncio.Server | None = None
        self.http_connections: ConnectionGuard | None = None
        self.http_port: int | None = None
        self.mqtt_port: int | None = None
        # (name, stop coroutine) in start order; stop() runs them in reverse.
        self._stoppers: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        # Extra /health sections contributed by parts: name -> callable returning JSON.
        self.health_sections: dict[str, Callable[[], Json]] = {}

    def _authenticate_websocket(self, request: web.Request) -> str | None:
        """The principal of a signed /mqtt URL: the access key the HTTP guard verified (with
        credentials configured) or read (without); None for an unsigned URL."""
        return request.get(PRINCIPAL)

    # -- lifecycle -----------------------------------------------------------------
    def _endpoints(self) -> dict[str, str]:
        http = f"http://127.0.0.1:{self.http_port}"
        return {**self.backends.endpoints, "iot-data": http, "lambda": http, "iot": http}

    def load_project(self) -> Project:
        config = self.config
        return load_project(
            config.rules, config.region, config.account_id, config.parameter_overrides
        )

    async def start(self) -> None:
        """Services -> functions -> rules -> broker -> HTTP (see the module docstring)."""
        await self._hold_data_dir()
        await self.controlplane.start()
        self._stoppers.append(("control plane", self.controlplane.stop))
        self.project = await asyncio.to_thread(self.load_project)
        for diagnostic in self.project.diagnostics:
            level = logging.WARNING if diagnostic.severity == "warning" else logging.ERROR
            log.log(level, "%s", diagnostic)
        needs_services = bool(
            self.project.tables
            or self.project.streams
            or self.project.functions
            or self.config.backend not in ("auto",)
        )
        if not needs_services:
            await self.backends.stop()  # processes `up` may have spawned ahead are not needed
        else:
            try:
                await self.backends.start()
            except BackendError as exc:
                await self.backends.stop()
                raise StartupError(str(exc)) from exc
            self._stoppers.append(("backends", self.backends.stop))
            await self.backends.provision(self.project)
            self.targets.dynamodb = self.backends.dynamodb
            self.targets.kinesis = self.backends.kinesis
            self.health_sections["backends"] = self.backends.health
            monitor = asyncio.create_task(self.backends.monitor(lambda: self.project))
            self._stoppers.append(("backend monitor", canceller(monitor)))
        await self.functions.start(self.project.functions)
        self._stoppers.append(("functions", self.functions.stop))
        self.health_sections["functions"] = self.functions.health
        if self.backends.kinesis is not None:
            for mapping in self.project.event_source_mappings:
                if not mapping.enabled:
                    continue
                poller = KinesisPoller(
                    mapping, self.backends.kinesis, self.functions, self.config.region
                )
                await poller.start()
                self._stoppers.append((f"kinesis mapping {mapping.stream}", poller.stop))
        try:
            self._apply_policies(self.project)
        except PolicyError as exc:
            raise StartupError(str(exc)) from exc
        if self.config.no_auth:
            log.warning("IoT policies are NOT enforced (--no-auth): AWS would check every client")
        await self.rules.start()
        self._load_rules()
        self._stoppers.append(("rules", self.rules.stop))
        self.health_sections["rules"] = self.rules.health
        if self.config.hot_reload and self.config.rules:
            self.watcher = RuleWatcher(self.config.rules, self.load_project, self._apply_project)
            self.watcher.start()
            self._stoppers.append(("rule watcher", self.watcher.stop))
        await self.broker.start()
        await self._load_broker_state()
        try:
            await self.mqtt_listener.start()
        except OSError as exc:
            raise StartupError(f"MQTT port {self.config.mqtt_port}: {exc}") from exc
        self.mqtt_port = self.mqtt_listener.port
        # Unwound in reverse: the broker closes the connections, then the listener its port.
        self._stoppers.append(("MQTT listener", self.mqtt_listener.stop))
        await self._start_mqtt_tls()
        self._stoppers.append(("broker", self.broker.stop))
        try:
            await self._start_http()
        except OSError as exc:
            raise StartupError(f"HTTP port {self.config.http_port}: {exc.strerror}") from exc

    async def _start_mqtt_tls(self) -> None:
        """MQTT over TLS with client certificates, on AWS's 8883 when it is free."""
        config = self.config
        controlplane = self.controlplane
        listener = TlsListener(
            self.broker.serve_link,
            config.host,
            config.mqtt_tls_port,
            controlplane.mqtt_context(),
            controlplane.admit,
        )
        try:
            await listener.start()
        except OSError as exc:
            if config.mqtt_tls_port != MQTT_TLS_PORT:
                raise StartupError(f"MQTT TLS port {config.mqtt_tls_port}: {exc}") from exc
            log.info("port %d is taken: MQTT over TLS on any free port", config.mqtt_tls_port)
            listener.port = 0
            await listener.start()
        self.mqtt_tls_listener = listener
        controlplane.mqtt_tls_port = listener.port
        self._stoppers.append(("MQTT TLS listener", listener.stop))

    def _file_rules(self) -> tuple[RuleSpec, ...]:
        return self.project.rules

    def _load_rules(self) -> None:
        """The engine's rules: the project's files and the API's (controlplane/topic_rules.py
        says which wins on a name)."""
        self.rules.load(self.controlplane.rules.merged(self.project))

    def _registry_changed(self) -> None:
        self._install_authorizer()
        self.controlplane.close_refused(self.broker.iot_sessions.values())

    def _install_authorizer(self) -> None:
        """Certificates' policies once a certificate exists (IdentityAuthorizer), beside the
        policy files for clients without one; none of it with ``--no-auth``."""
        wanted: IdentityAuthorizer | PolicySet | None = None
        if self.config.no_auth:
            wanted = None
        elif self.controlplane.registry.certificates:
            if self.identity_authorizer is None:
                self.identity_authorizer = IdentityAuthorizer(
                    self.controlplane.registry,
                    None,
                    self.config.region,
                    self.config.account_id,
                )
            self.identity_authorizer.fallback = self.file_policies
            wanted = self.identity_authorizer
        else:
            wanted = self.file_policies
        # Set only when it changes: the console wraps the installed one (console/taps.py).
        if wanted is not self._installed_authorizer or self.broker.state.authorizer is None:
            self.broker.set_authorizer(wanted)
            self._installed_authorizer = wanted

    async def _hold_data_dir(self) -> None:
        """The data directory for this emulator alone, before any part reads it; released
        last, once every part has saved what it keeps."""
        directory = self.config.kept_in
        if directory is None:
            return
        self.store = BrokerStore(
            self.broker, directory, self.config.save_interval, self.config.max_saved_retained
        )
        try:
            self.store.lock()
        except (DataDirInUse, OSError) as exc:
            await self.backends.stop()  # what `up` spawned ahead
            if isinstance(exc, DataDirInUse):
                raise StartupError(str(exc)) from exc
            raise StartupError(f"data directory {directory}: {exc}") from exc
        self._stoppers.append(("data directory", self.store.release))

    async def _load_broker_state(self) -> None:
        """Retained messages and persistent sessions from the data directory, before any
        client can connect; saved from then on, and last after the broker has stopped."""
        store = self.store
        if store is None:
            return
        try:
            await store.load()
        except OSError as exc:
            raise StartupError(f"data directory {store.path.parent}: {exc}") from exc
        store.start()
        self._stoppers.append(("broker state", store.stop))

    def _apply_policies(self, project: Project) -> None:
        """Enforce the project's policies and ``--policy`` files, unless ``--no-auth``.

        With no policy at all, clients are not restricted (AWS would deny everything);
        the ready line and /health say which of the three it is.
        """
        if self.config.no_auth:
            self.auth_state = "OFF (--no-auth: IoT policies are NOT enforced)"
            self.broker.set_authorizer(None)
            return
        specs = list(project.policies)
        specs += load_policy_files(self.config.policies, self.config.region, self.config.account_id)
        if not specs:
            self.auth_state = "open (no IoT policies loaded)"
            self.file_policies = None
            self._install_authorizer()
            return
        policies = PolicySet(specs, self.config.region, self.config.account_id)
        for warning in policies.warnings:
            log.warning("%s", warning)
        self.auth_state = f"enforced ({', '.join(policies.names)})"
        self.file_policies = policies
        self._install_authorizer()

    def _apply_project(self, project: Project) -> None:
        try:
            self._apply_policies(project)
        except PolicyError as exc:
            log.error("policies not reloaded, the previous ones stay active: %s", exc)
        self.project = project
        self._load_rules()
        asyncio.get_running_loop().create_task(self._apply_services(project))

    async def _apply_services(self, project: Project) -> None:
        try:
            if self.targets.dynamodb is not None:
                await self.backends.provision(project)
            await self.functions.update(project.functions)
        except Exception:
            log.exception("could not apply the reloaded tables/streams/functions")

    async def _start_http(self) -> None:
        """aiohttp's server behind the connection guard (budget, header deadline); its
        keep-alive timeout is the idle timeout."""
        config = self.config
        self._runner = web.AppRunner(
            self.http_app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
            keepalive_timeout=config.http_idle_timeout,
        )
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        self.http_connections = ConnectionGuard(
            server, config.http_header_timeout, config.http_max_connections
        )
        self.http_guard.connections = self.http_connections
        loop = asyncio.get_running_loop()
        try:
            self._http_server = await loop.create_server(
                self.http_connections, config.host, config.http_port, backlog=1024
            )
        except OSError:
            await self._runner.cleanup()
            raise
        sockets = self._http_server.sockets
        self.http_port = sockets[0].getsockname()[1] if sockets else config.http_port
        self.http_guard.policy.port = self.http_port
        self.health_sections["http_connections"] = self.http_connections.health
        try:
            self._https_server = await loop.create_server(
                self.http_connections,
                config.host,
                config.https_port,
                backlog=1024,
                ssl=self.controlplane.https_context(),
            )
        except OSError:
            if config.https_port != HTTPS_PORT:
                raise
            self._https_server = await loop.create_server(
                self.http_connections,
                config.host,
                0,
                backlog=1024,
                ssl=self.controlplane.https_context(),
            )
        tls_sockets = self._https_server.sockets
        self.controlplane.https_port = tls_sockets[0].getsockname()[1] if tls_sockets else None
        self.controlplane.http_port = self.http_port
        sigv4_mode = "required" if config.credentials else "off (no credentials configured)"
        self.health_sections["sigv4"] = lambda: sigv4_mode
        self._stoppers.append(("http", self._stop_http))

    async def _stop_http(self) -> None:
        """Stop accepting, then let aiohttp close its connections (shutdown_timeout)."""
        if self._http_server is not None:
            self._http_server.close()
        if self._https_server is not None:
            self._https_server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http_server is not None:
            await self._http_server.wait_closed()
        if self._https_server is not None:
            await self._https_server.wait_closed()

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
            "mqtt": {
                "tcp": self.mqtt_port,
                "ws": "/mqtt",
                "connections": self.broker.connection_count,
                "sessions": len(self.broker.iot_sessions),
                "subscriptions": len(self.broker.topic_subscriptions),
            },
            "auth": self.auth_state,
            "http": self.http_port,
            "tls": {
                "mqtt": self.controlplane.mqtt_tls_port,
                "https": self.controlplane.https_port,
                "ca": str(self.controlplane.ca_path),
                "refused": self.mqtt_tls_listener.refused if self.mqtt_tls_listener else 0,
            },
        }
        for name, section in self.health_sections.items():
            body[name] = section()
        if "backends" in body and self.config.advertised_endpoints:
            # URLs a host can use (compose: its published ports), not the network's names
            body["backends"] = {**body["backends"], **dict(self.config.advertised_endpoints)}
        return body

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(self.health())

    async def _memory(self, request: web.Request) -> web.Response:
        """After a full collection: live Python objects and resident memory (leak hunting;
        the churn benchmark compares them before and after its clients leave)."""
        gc.collect()
        rss_kib = 0
        with contextlib.suppress(OSError):
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss_kib = int(line.split()[1])
        return web.json_response({"objects": len(gc.get_objects()), "rss_kib": rss_kib})

    def ready_line(self) -> str:
        host = self.config.host
        took = time.time() - self.started_at
        backend = self.backends.kind if "backends" in self.health_sections else "none"
        kept_in = self.config.kept_in
        data = "in memory (nothing kept)"
        if kept_in is not None:
            tables = f"; {self.backends.keeps()}" if backend != "none" else ""
            data = f"{kept_in} (retained messages, persistent sessions{tables})"
        return (
            f"ready in {took:.2f}s: mqtt://{host}:{self.mqtt_port} "
            f"ws://{host}:{self.http_port}/mqtt http://{host}:{self.http_port}/ "
            f"mqtts://{host}:{self.controlplane.mqtt_tls_port} "
            f"wss://{host}:{self.controlplane.https_port}/mqtt ca={self.controlplane.ca_path} "
            f"backend={backend} rules={len(self.rules.rules)} functions={len(self.functions.pools)} "
            f"auth={self.auth_state} data={data}"
        )
