"""The live console's HTTP side: the page at ``/console``, its event stream and its forms.

- ``GET /console``: the page (``static/``: plain HTML, CSS and JS, no CDN: it works offline).
- ``GET /console/events``: server-sent events, one ``data:`` line per batch of hub events
  (a JSON array), and a ``state`` event every ``STATE_INTERVAL`` with the clients and the
  rules. A viewer that reads slowly loses its own oldest events (observe.py's bounded
  queue); the batch after the loss says how many.
- ``GET /console/state``: that state once.
- ``POST /console/try``: the dry run behind ``rules test`` (rules/dryrun.py) on a pasted
  message, for the loaded rules, one pasted rule (native YAML) or one SQL statement.
- ``POST /console/publish``: publish as a chosen client, checked like that client's MQTT
  PUBLISH (topic, size, the IoT policy); open when the emulator enforces no policy.

Local only, like the HTTP APIs: the HTTP guard has already checked the ``Host`` (and the
``Origin`` of the POSTs); the stream, a GET a page elsewhere could open, also needs an
allowed ``Origin`` when it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from emulator.broker.auth import ClientIdentity
from emulator.broker.broker import IoTBroker
from emulator.clock import now_ms
from emulator.console.taps import ConsoleTaps
from emulator.console.views import dumps, rules_json, sessions_json
from emulator.functions.service import FunctionService
from emulator.limits import Refused
from emulator.messages import InboundMessage, IngestMessage
from emulator.observe import ObserverHub, TooManyViewers, Viewer
from emulator.project.collect import Collector
from emulator.project.loader import load_native
from emulator.project.yamlpos import load_yaml
from emulator.rules.context import MessageContexts
from emulator.rules.dryrun import dry_run
from emulator.rules.engine import RulesEngine
from emulator.sql.errors import RuleEvaluationError
from emulator.transport.http_guard import OriginPolicy

log = logging.getLogger(__name__)

Json = Any
STATIC = Path(__file__).resolve().parent / "static"
STATE_INTERVAL = 2.0  # seconds between two ``state`` events of the stream
MAX_BATCH = 500  # events per ``data:`` line
TRY_FILE = Path("<console>")


class ConsoleHost(Protocol):
    """What the console reads of the emulator (app.py's ``Emulator``)."""

    broker: IoTBroker
    rules: RulesEngine
    functions: FunctionService
    auth_state: str


class Console:
    """The console of one emulator: its hub, taps and routes."""

    def __init__(
        self,
        host: ConsoleHost,
        origins: OriginPolicy,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.host = host
        self.origins = origins
        self.region = region
        self.account_id = account_id
        self.hub = ObserverHub()
        self.taps = ConsoleTaps(self.hub, host.broker, host.rules, host.functions)
        self._closing = False
        self._wakers: set[Callable[[], None]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/console", self.page)
        app.router.add_get("/console/", self.page)
        app.router.add_get("/console/events", self.events)
        app.router.add_get("/console/state", self.state_route)
        app.router.add_post("/console/try", self.try_it)
        app.router.add_post("/console/publish", self.publish)
        app.router.add_static("/console/static/", STATIC, show_index=False)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, app: web.Application) -> None:
        """End the open streams, so that the server does not wait for them."""
        self._closing = True
        for wake in list(self._wakers):
            wake()

    # -- the page and the stream --------------------------------------------------------
    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def _cross_site(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and not self.origins.origin_allowed(
            origin, request.headers.get("Host")
        ):
            return web.json_response(
                {"message": f"the console's stream is not served to Origin {origin!r}"},
                status=403,
            )
        return None

    def state(self) -> Json:
        host = self.host
        return {
            "clients": sessions_json(host.broker.state.sessions),
            "rules": rules_json(host.rules.project, host.rules.counters),
            "functions": sorted(host.functions.pools),
            "auth": host.auth_state,
        }

    async def state_route(self, request: web.Request) -> web.Response:
        refused = self._cross_site(request)
        return refused or web.json_response(self.state())

    async def events(self, request: web.Request) -> web.StreamResponse:
        refused = self._cross_site(request)
        if refused is not None:
            return refused
        wakeup = asyncio.Event()
        try:
            viewer = self.hub.attach(wakeup.set)
        except TooManyViewers as exc:
            return web.json_response({"message": str(exc)}, status=429)
        self._wakers.add(wakeup.set)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            await self._stream(response, viewer, wakeup)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._wakers.discard(wakeup.set)
            self.hub.detach(viewer)
        return response

    async def _stream(
        self, response: web.StreamResponse, viewer: Viewer, wakeup: asyncio.Event
    ) -> None:
        loop = asyncio.get_running_loop()
        await response.write(_sse("state", self.state()))
        next_state = loop.time() + STATE_INTERVAL
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_state - loop.time())):
                    await wakeup.wait()
            wakeup.clear()
            events, dropped = viewer.take()
            for start in range(0, len(events), MAX_BATCH):
                await response.write(_sse(None, events[start : start + MAX_BATCH]))
            if dropped:
                await response.write(_sse("dropped", {"dropped": dropped}))
            if loop.time() >= next_state:
                await response.write(_sse("state", self.state()))
                next_state = loop.time() + STATE_INTERVAL

    # -- try it -------------------------------------------------------------------------
    async def try_it(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        return web.json_response(self.dry_run(body))

    def dry_run(self, body: dict[str, Json]) -> Json:
        """The answer of ``POST /console/try`` (the same code as ``rules test``)."""
        mode = str(body.get("mode", "loaded"))
        topic = str(body.get("topic", ""))
        payload = str(body.get("payload", "")).encode()
        client_id = body.get("client_id") or None
        diagnostics: list[str] = []
        if mode == "loaded":
            rules = list(self.host.rules.project.rules)
        else:
            if mode == "sql":
                item = {"ruleName": "console_sql", "sql": str(body.get("sql", "")), "actions": []}
                data: Json = {"rules": [item]}
            else:
                try:
                    data = load_yaml(str(body.get("rule", "")))
                except Exception as exc:  # YAML's errors: shown to the user as they come
                    return {"error": f"YAML: {exc}", "results": []}
                if isinstance(data, dict) and "rules" not in data:
                    data = {"rules": [data]}
                if not isinstance(data, dict):
                    return {"error": "expected a rule (a mapping)", "results": []}
            out = Collector()
            load_native(TRY_FILE, data, out, self.region, self.account_id)
            diagnostics = [
                d.message for d in out.diagnostics if not d.message.endswith("has no actions")
            ]
            rules = list(out.rules)
        ctx = MessageContexts(self.account_id).of_payload(
            topic, payload, int(time.time() * 1000), client_id=client_id
        )
        try:
            results = dry_run(rules, ctx)
        except RuleEvaluationError as exc:
            return {"error": str(exc), "results": [], "diagnostics": diagnostics}
        return {"results": results, "diagnostics": diagnostics, "rules": len(rules)}

    # -- publish as a client --------------------------------------------------------------
    async def publish(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            client_id = str(body["client_id"])
            topic = str(body["topic"])
            payload = str(body.get("payload", "")).encode()
            qos = 1 if body.get("qos") in (1, "1") else 0
            retain = bool(body.get("retain", False))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        if not client_id:
            return web.json_response({"error": "a client ID is needed"}, status=400)
        broker = self.host.broker
        checked = broker.publish_check.client_publish(topic, len(payload))
        if isinstance(checked, Refused):
            return web.json_response({"error": checked.message}, status=400)
        state = broker.state
        identity = ClientIdentity(client_id, client_id, "console")
        for action in ("iot:Publish", "iot:RetainPublish") if retain else ("iot:Publish",):
            decision = state.authorize(identity, action, topic)
            if not decision.allowed:
                return web.json_response({"error": decision.reason}, status=403)
        now = now_ms()
        if checked is not None:  # Basic Ingest: to its rule only
            broker.ingest(
                IngestMessage(
                    checked.topic,
                    payload,
                    qos,
                    False,
                    client_id,
                    client_id,
                    now,
                    source_ip="console",
                    rule=checked.rule,
                )
            )
        else:
            broker.publish(
                InboundMessage(
                    topic, payload, qos, retain, client_id, client_id, now, source_ip="console"
                )
            )
        return web.json_response({"published": topic})


def _sse(name: str | None, data: Json) -> bytes:
    head = f"event: {name}\n" if name else ""
    try:
        text = dumps(data)
    except (TypeError, ValueError) as exc:  # a value JSON cannot hold: say so, go on
        log.warning("console: an event could not be sent: %s", exc)
        text = dumps({"error": f"an event could not be sent: {exc}"} if name else [])
    return f"{head}data: {text}\n\n".encode()
