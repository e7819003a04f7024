"""Where the console listens, installed only while a console is open.

Each tap wraps an existing seam of the emulator, so the parts carry no console code on
their hot paths (observe.py):

- the broker's ``on_message``/``on_ingest`` callbacks: the message is told to the hub, then
  handed to the engine's ``handle_observed`` (its rule evaluations and actions reported);
- the broker's authorizer: a denial is told with the statement that decided
  (``PolicySet.explain``);
- each function pool's ``invoke``: the invocation, its trigger, duration and result;
- the ``lambda.<function>`` loggers the workers write their handlers' lines to, each
  tagged with its request ID.

``ConsoleTaps.set_active`` is the hub's ``on_activity`` listener. Removing a tap restores
what was there, unless the part was given something else meanwhile (a hot reload's new
authorizer), which is then left alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from emulator.actions.payloads import payload_bytes
from emulator.broker.auth import Authorizer, ClientIdentity, Decision
from emulator.broker.broker import IoTBroker
from emulator.functions.service import FunctionPool, FunctionService
from emulator.functions.workers import InvokeResult
from emulator.messages import InboundMessage, IngestMessage
from emulator.observe import (
    Denial,
    Invocation,
    LogLine,
    MessageSeen,
    ObserverHub,
    kept,
    properties_json,
)
from emulator.rules.engine import RulesEngine

log = logging.getLogger(__name__)

Json = Any
LAMBDA_LOGGER = "lambda"  # functions/workers.py: logging.getLogger(f"lambda.{name}")


def transport_of(broker: IoTBroker, msg: InboundMessage, parent: int | None) -> str:
    """How the message came in: its client's link (MQTT over TCP or WebSocket), or who made
    it (a rule, the broker's lifecycle events, the HTTP data plane or the console)."""
    if msg.client_id is None:
        if parent is not None or msg.hops:
            return "republish"
        if msg.topic.startswith("$aws/events/"):
            return "lifecycle"
        return "http"
    session = broker.state.sessions.get(msg.client_id)
    link = session.link if session is not None else None
    if link is None:
        return "console" if msg.source_ip == "console" else "mqtt"
    name = type(link).__name__
    if name.startswith("WebSocket"):
        return "mqtt-ws"
    if name.startswith("Tls"):
        return "mqtt-tls"
    return "mqtt"


class ObservingAuthorizer:
    """The broker's authorizer, telling the hub about each denial."""

    __slots__ = ("hub", "inner")

    def __init__(self, inner: Authorizer, hub: ObserverHub) -> None:
        self.inner = inner
        self.hub = hub

    def check(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        decision = self.inner.check(identity, action, resource)
        if not decision.allowed and self.hub.active:
            self.hub.emit(
                Denial(
                    identity.client_id,
                    action,
                    resource,
                    decision.reason,
                    self.statement(identity, action, resource),
                )
            )
        return decision

    def statement(self, identity: ClientIdentity, action: str, resource: str) -> Json:
        explain = getattr(self.inner, "explain", None)
        if explain is None:
            return None
        _, statement = explain(identity, action, resource)
        if statement is None:
            return None
        return {
            "label": statement.label,
            "policy": statement.policy,
            "index": statement.index,
            "source": statement.source,
        }

    def __getattr__(self, name: str) -> Any:  # the policy set's other attributes (names)
        return getattr(self.inner, name)


class _LogTap(logging.Handler):
    """The workers' log lines (``[request id] text``) of this emulator's functions."""

    def __init__(self, hub: ObserverHub, functions: FunctionService) -> None:
        super().__init__(logging.INFO)
        self.hub = hub
        self.functions = functions

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name.partition(".")[2]
        args = record.args
        if name not in self.functions.pools or not isinstance(args, tuple) or len(args) != 2:
            return
        self.hub.emit(LogLine(name, str(args[0]), str(args[1])))


def trigger_of(source: Hashable, rule: str | None) -> str:
    if rule is not None:
        return f"rule {rule}"
    if isinstance(source, tuple) and len(source) == 2:
        kind, name = source
        if kind == "mapping":
            return f"kinesis {name}"
        if kind in ("invoke", "invoke-from"):
            return f"Invoke API ({name})"
        if kind == "rule":
            return f"rule {name}"
    if isinstance(source, str):
        return f"rule (client {source})"
    return "emulator"


class ConsoleTaps:
    """Installs and removes the taps of one emulator's parts (module docstring)."""

    def __init__(
        self,
        hub: ObserverHub,
        broker: IoTBroker,
        rules: RulesEngine,
        functions: FunctionService,
    ) -> None:
        self.hub = hub
        self.broker = broker
        self.rules = rules
        self.functions = functions
        self._on_message: Callable[[InboundMessage], None] | None = None
        self._on_ingest: Callable[[IngestMessage], None] | None = None
        self._authorizer: ObservingAuthorizer | None = None
        self._pools: list[FunctionPool] = []
        self._log_tap = _LogTap(hub, functions)
        self._log_level: int | None = None
        hub.lambda_payload = payload_bytes
        hub.on_activity.append(self.set_active)

    def set_active(self, active: bool) -> None:
        if active:
            self.install()
        else:
            self.remove()

    # -- install / remove -------------------------------------------------------------
    def install(self) -> None:
        broker = self.broker
        self._on_message = broker.on_message
        self._on_ingest = broker.on_ingest
        broker.on_message = self.message
        broker.on_ingest = self.ingest
        self.rules.observer = self.hub
        self.sync()
        logger = logging.getLogger(LAMBDA_LOGGER)
        logger.addHandler(self._log_tap)
        if logger.getEffectiveLevel() > logging.INFO:
            self._log_level = logger.level
            logger.setLevel(logging.INFO)

    def remove(self) -> None:
        broker = self.broker
        if broker.on_message == self.message:
            broker.on_message = self._on_message
        if broker.on_ingest == self.ingest:
            broker.on_ingest = self._on_ingest
        self.rules.observer = None
        state = broker.state
        if self._authorizer is not None and state.authorizer is self._authorizer:
            state.authorizer = self._authorizer.inner
        self._authorizer = None
        for pool in self._pools:
            vars(pool).pop("invoke", None)
        self._pools = []
        logger = logging.getLogger(LAMBDA_LOGGER)
        logger.removeHandler(self._log_tap)
        if self._log_level is not None:
            logger.setLevel(self._log_level)
            self._log_level = None

    def sync(self) -> None:
        """Wrap what a hot reload replaced since: a new authorizer, new function pools."""
        state = self.broker.state
        inner = state.authorizer
        if inner is not None and inner is not self._authorizer:
            self._authorizer = ObservingAuthorizer(inner, self.hub)
            state.authorizer = self._authorizer
        for pool in self.functions.pools.values():
            if "invoke" not in vars(pool):
                setattr(pool, "invoke", self._invoker(pool, pool.invoke))  # noqa: B010
                self._pools.append(pool)

    # -- the taps ---------------------------------------------------------------------
    def message(self, msg: InboundMessage) -> None:
        try:
            self.sync()
            self._seen(msg, msg.topic)
        except Exception:  # the console's fault must not cost the message its rules
            log.exception("console: could not report a message on %r", msg.topic)
        self.rules.handle_observed(msg)

    def _seen(self, msg: InboundMessage, topic: str, rule: str | None = None) -> None:
        """Report a message (``topic`` as published; ``rule``: a Basic Ingest's rule)."""
        hub = self.hub
        parent = hub.parent_of(msg)
        hub.emit(
            MessageSeen(
                hub.seq_of(msg),
                msg.timestamp_ms,
                msg.client_id,
                transport_of(self.broker, msg, parent),
                topic,
                msg.qos,
                msg.retain,
                kept(msg.payload),
                len(msg.payload),
                msg.hops,
                parent,
                rule,
                properties_json(msg.properties),  # MQTT 5
            )
        )

    def ingest(self, msg: IngestMessage) -> None:
        try:
            self._seen(msg, msg.published_topic, msg.rule)
        except Exception:  # as in ``message``
            log.exception("console: could not report a message on %r", msg.published_topic)
        self.rules.ingest(msg)

    def _invoker(
        self, pool: FunctionPool, invoke: Callable[[bytes, Hashable], Awaitable[InvokeResult]]
    ) -> Callable[..., Awaitable[InvokeResult]]:
        hub = self.hub
        name = pool.spec.name

        async def observed(payload: bytes, source: Hashable = ("emulator", "")) -> InvokeResult:
            started = time.perf_counter()
            result = await invoke(payload, source)
            if hub.active:
                link = hub.invoked_by(payload)
                hub.emit(
                    Invocation(
                        name,
                        result.request_id,
                        trigger_of(source, link[1] if link else None),
                        link[0] if link else None,
                        round((time.perf_counter() - started) * 1000, 1),
                        result.status_code,
                        result.function_error,
                        kept(payload),
                        len(payload),
                        kept(result.payload),
                        len(result.payload),
                    )
                )
            return result

        return observed
