"""The observer hub: what the live console (emulator/console/) is told about each message's
way through the broker, the rules, the actions and the functions. Pure: no I/O, no clock,
no asyncio.

Theory of operation
-------------------
The parts do not call the hub on their hot paths. While no console is open, ``active`` is
False and nothing is tapped: the broker's ``on_message`` is the engine's ``handle``, the
engine's ``observer`` is None (its hooks off the hot path each cost one attribute check),
no authorizer or function pool is wrapped. When the first viewer attaches, the hub calls
its ``on_activity`` listeners (the console's taps install themselves); when the last one
leaves they uninstall.

Every event is a frozen, slotted value. ``emit`` appends it to each viewer's own bounded
deque and calls the viewer's ``wake`` (the console's writer task waits on it): a viewer
that does not keep up loses its own oldest events (counted in ``dropped``), never slows
the broker or another viewer.

Messages get a sequence number (``seq``) the first time the hub sees them, so a rule
evaluation, an action, an error action and a function invocation can point at the message
they came from; a message a rule republished points at its parent (``parent``).
"""

from __future__ import annotations

import base64
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Final

from emulator.messages import InboundMessage

Json = Any
VIEWER_QUEUE = 2_000  # events waiting for one viewer before its oldest are dropped
MESSAGES_KEPT = 4_096  # messages whose sequence number the hub remembers
PAYLOADS_KEPT = 1_024  # Lambda action payloads remembered to find their invocation
PAYLOAD_KEPT = 16 * 1024  # bytes of a payload an event keeps (its size says how many it had)
MAX_VIEWERS = 16


@dataclass(frozen=True, slots=True)
class MessageSeen:
    """A message the broker accepted (client PUBLISH, lifecycle event, republish, HTTP)."""

    seq: int
    time_ms: int
    client_id: str | None
    transport: str
    topic: str
    qos: int
    retain: bool
    payload: bytes  # at most PAYLOAD_KEPT bytes of it
    size: int
    hops: int
    parent: int | None  # the message a rule republished this one from
    ingest_rule: str | None = None  # a Basic Ingest message: the rule it names
    properties: Json = None  # MQTT 5 PUBLISH properties, when the message has them
    kind: str = "message"  # what the page dispatches on: always the default


@dataclass(frozen=True, slots=True)
class RuleEvaluated:
    """One rule whose FROM matched a message: did WHERE pass, what did SELECT make."""

    seq: int
    rule: str
    matched: bool  # WHERE passed (or there is none)
    output: Json = None
    error: str | None = None  # the SQL failed at run time
    external: bool = False  # evaluated on the engine's thread pool (get_dynamodb, ...)
    kind: str = "rule"  # what the page dispatches on: always the default


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """One action of a matched rule: its rendered request and what became of it."""

    seq: int
    rule: str
    action: str  # the type as AWS spells it (republish, dynamoDBv2, lambda, ...)
    status: str  # "published", "queued", "ok", "failed"
    request: Json = None
    error: str | None = None
    error_action: bool = False  # the rule's error action, not one of its actions
    kind: str = "action"  # what the page dispatches on: always the default


@dataclass(frozen=True, slots=True)
class ErrorActionTaken:
    """All failures of one rule for one message, in AWS's error message, and its error
    action."""

    seq: int
    rule: str
    action: str
    message: Json
    kind: str = "error_action"  # what the page dispatches on: always the default


@dataclass(frozen=True, slots=True)
class Invocation:
    """One function invocation that ran on a worker."""

    function: str
    request_id: str
    trigger: str  # "rule <name>", "kinesis <stream>", "invoke API", ...
    seq: int | None  # the message whose rule invoked it, when known
    duration_ms: float
    status: int
    error: str | None
    payload: bytes  # at most PAYLOAD_KEPT bytes of the event
    size: int
    result: bytes  # and of the result
    result_size: int
    kind: str = "invocation"  # what the page dispatches on: always the default


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line a function's handler wrote, with the request it was serving."""

    function: str
    request_id: str
    text: str
    kind: str = "log"  # what the page dispatches on: always the default


@dataclass(frozen=True, slots=True)
class Denial:
    """A request the IoT policy refused, and the statement that decided (None: nothing
    allowed it, an implicit deny)."""

    client_id: str
    action: str
    resource: str
    reason: str
    statement: Json = None
    kind: str = "denial"  # what the page dispatches on: always the default


Event = (
    MessageSeen | RuleEvaluated | ActionOutcome | ErrorActionTaken | Invocation | LogLine | Denial
)


class Viewer:
    """One open console: its own bounded queue of events."""

    __slots__ = ("dropped", "events", "limit", "wake")

    def __init__(self, wake: Callable[[], None], limit: int = VIEWER_QUEUE) -> None:
        self.events: deque[Event] = deque()
        self.limit = max(1, limit)
        self.dropped = 0
        self.wake = wake

    def push(self, event: Event) -> None:
        events = self.events
        if len(events) >= self.limit:
            events.popleft()
            self.dropped += 1
        events.append(event)
        self.wake()

    def take(self) -> tuple[list[Event], int]:
        """Everything waiting, and how many were dropped since the last call."""
        events, dropped = list(self.events), self.dropped
        self.events.clear()
        self.dropped = 0
        return events, dropped


class TooManyViewers(Exception):
    """More consoles open than ``MAX_VIEWERS``."""


class ObserverHub:
    """The viewers of one emulator and the sequence numbers of the messages they see."""

    def __init__(self, max_viewers: int = MAX_VIEWERS) -> None:
        self.active = False
        self.viewers: list[Viewer] = []
        self.max_viewers = max_viewers
        self.on_activity: list[Callable[[bool], None]] = []
        self._next_seq = 0
        # id(message) -> (seq, message): the message is kept so that its id is not reused
        self._seqs: OrderedDict[int, tuple[int, InboundMessage]] = OrderedDict()
        # id(republished message) -> its source's seq, until the broker sees it
        self._parents: dict[int, int] = {}
        # a Lambda action's event payload (its length and hash) -> (seq, rule), until its
        # invocation runs
        self._invoking: OrderedDict[tuple[int, int], tuple[int, str]] = OrderedDict()
        # How a Lambda action encodes its event (actions/payloads.py), set by the console:
        # an invocation whose payload is one of those events points back at its message.
        self.lambda_payload: Callable[[Json], bytes] | None = None

    # -- viewers ----------------------------------------------------------------------
    def attach(self, wake: Callable[[], None], limit: int = VIEWER_QUEUE) -> Viewer:
        if len(self.viewers) >= self.max_viewers:
            raise TooManyViewers(f"at most {self.max_viewers} consoles may be open at once")
        viewer = Viewer(wake, limit)
        self.viewers.append(viewer)
        if not self.active:
            self.active = True
            self._notify(True)
        return viewer

    def detach(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        if not self.viewers and self.active:
            self.active = False
            self._seqs.clear()
            self._parents.clear()
            self._invoking.clear()
            self._notify(False)

    def _notify(self, active: bool) -> None:
        for listener in self.on_activity:
            listener(active)

    def emit(self, event: Event) -> None:
        for viewer in self.viewers:
            viewer.push(event)

    # -- message identity -------------------------------------------------------------
    def seq_of(self, msg: InboundMessage) -> int:
        """The message's sequence number, given it on first sight."""
        key = id(msg)
        known = self._seqs.get(key)
        if known is not None and known[1] is msg:
            return known[0]
        self._next_seq += 1
        seq = self._next_seq
        self._seqs[key] = (seq, msg)
        if len(self._seqs) > MESSAGES_KEPT:
            self._seqs.popitem(last=False)
        return seq

    def republished(self, source: InboundMessage, message: InboundMessage) -> None:
        """``message`` was made by a rule from ``source`` (its parent in the console)."""
        if len(self._parents) >= MESSAGES_KEPT:
            self._parents.clear()
        self._parents[id(message)] = self.seq_of(source)
        self.seq_of(message)  # kept: its id stays its own until the broker sees it

    def parent_of(self, msg: InboundMessage) -> int | None:
        return self._parents.pop(id(msg), None)

    def invoking(self, payload: bytes, seq: int, rule: str) -> None:
        """A rule's Lambda action queued this event: its invocation points back at it."""
        self._invoking[len(payload), hash(payload)] = (seq, rule)
        if len(self._invoking) > PAYLOADS_KEPT:
            self._invoking.popitem(last=False)

    def invoked_by(self, payload: bytes) -> tuple[int, str] | None:
        return self._invoking.pop((len(payload), hash(payload)), None)

    # -- what the rules engine's hooks call (one call each, off its hot path) ---------
    def evaluated(
        self, msg: InboundMessage, rule: str, output: Json, error: str | None = None
    ) -> None:
        matched = error is None and output is not NO_OUTPUT
        self.emit(
            RuleEvaluated(self.seq_of(msg), rule, matched, output if matched else None, error)
        )

    def published(
        self,
        msg: InboundMessage,
        rule: str,
        message: InboundMessage,
        error_action: bool = False,
    ) -> None:
        """A republish action made ``message`` (immediate: no worker)."""
        self.republished(msg, message)
        request = {"topic": message.topic, "qos": message.qos, "payload": message.payload}
        self.emit(
            ActionOutcome(
                self.seq_of(msg),
                rule,
                "republish",
                "published",
                request,
                error_action=error_action,
            )
        )

    def action(
        self,
        msg: InboundMessage,
        rule: str,
        action: str,
        status: str,
        request: Json = None,
        error: str | None = None,
        error_action: bool = False,
    ) -> None:
        """A queued action's request (``queued``) or outcome (``ok``, ``failed``)."""
        seq = self.seq_of(msg)
        shown = request_fields(request)
        if status == "queued" and not error_action and self.lambda_payload is not None:
            payload = getattr(request, "payload", None)
            if getattr(request, "function_name", None) is not None:
                self.invoking(self.lambda_payload(payload), seq, rule)
        self.emit(ActionOutcome(seq, rule, action, status, shown, error, error_action))

    def error_action(self, msg: InboundMessage, rule: str, action: str, message: Json) -> None:
        self.emit(ErrorActionTaken(self.seq_of(msg), rule, action, message))


def kept(payload: bytes) -> bytes:
    """What an event keeps of a payload: a viewer's queue holds thousands of them."""
    return payload if len(payload) <= PAYLOAD_KEPT else payload[:PAYLOAD_KEPT]


def properties_json(properties: Json) -> Json:
    """A message's MQTT 5 properties (``messages.PublishProperties``, a named tuple) as the
    fields it has, by name; the raw property section (``wire``) left out."""
    if properties is None:
        return None
    fields = getattr(properties, "_asdict", None)
    if fields is None:
        return properties
    return {
        name: value
        for name, value in fields().items()
        if name != "wire" and value not in (None, (), b"")
    }


NO_OUTPUT: Final = object()  # what ``evaluated`` is given when WHERE did not pass


def request_fields(request: Json) -> Json:
    """A rendered action request (a NamedTuple) as its fields, named as AWS does where the
    request says (``describe``)."""
    fields = getattr(request, "_asdict", None)
    if fields is None:
        return request
    shown: dict[str, Json] = dict(request.describe()) if hasattr(request, "describe") else {}
    named = {id(v) for v in shown.values() if isinstance(v, str)}
    for name, value in fields().items():
        if not (isinstance(value, str) and id(value) in named):  # table_name: tableName
            shown[name] = value
    return shown


def json_default(value: Json) -> Json:
    """For ``json.dumps``: what JSON has no type for (the events keep the values as the
    parts made them; converting them is the console's work, once per batch)."""
    if isinstance(value, bytes):
        # ``kept`` may have cut a payload inside a character: still text without its bytes
        ends = (0, 1, 2, 3) if len(value) == PAYLOAD_KEPT else (0,)
        for cut in ends:
            try:
                return value[: len(value) - cut].decode()
            except UnicodeDecodeError:
                continue
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, set | frozenset):
        return list(value)
    if is_dataclass(value) and not isinstance(value, type):  # an event, MQTT 5 properties
        return asdict(value)
    return str(value)
