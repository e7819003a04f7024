"""What a rule action is, and what actions need from the rest of the emulator.

Theory of operation
-------------------
Each action type is one class in its own module (``republish.py``, ``dynamodbv2.py``, ...),
listed once in ``registry.py``. The class declares the type as AWS spells it, its names in
CloudFormation and in failed-action messages, the fields that take substitution templates,
the field it cannot do without and the resources it points at. Loaders, the dry run and
the engine only iterate over the registry, so a new action type is one new module plus its
registry line.

An instance is one action of one rule, compiled once when the project is loaded: its
templates are parsed then (``compile``). Per message, ``render`` fills them in and returns
a frozen, typed request (what ``rules test`` prints); ``execute`` sends a request to its
service from one of the engine's workers. An ``immediate`` action (republish) does not
wait for a worker: it makes a message for the broker (``message``), which the engine
publishes at once, with its hop limit and one flush per loop turn; no request object
is built on this path, the chat's.

A failure is an ``ActionError`` naming the action and resource as AWS's error action
message does (rule-error-handling.md); the engine routes it to the rule's error action.

While a worker runs ``execute``, ``ACTION_SOURCE`` holds the key the engine queued the
action under (the message's client ID, or its rule's key): an action that queues work in
another part of the emulator (``lambda``: the function's asynchronous queue) passes it on,
so that part, too, can keep one client's flood from others. It is a context variable, not
a parameter of ``execute``, so requests stay what the dry run shows and actions that queue
nothing need not know about it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, Self, TypeVar

from emulator.messages import InboundMessage
from emulator.sql.context import Env
from emulator.sql.templates import Template

Json = Any
RequestT = TypeVar("RequestT", bound="Request")

# The source (client ID or rule key) of the action a worker is executing (module docstring).
ACTION_SOURCE: ContextVar[Hashable | None] = ContextVar("ACTION_SOURCE", default=None)


class FunctionInvoker(Protocol):
    async def invoke(
        self,
        name: str,
        payload: bytes,
        invocation_type: str = "Event",
        source: Hashable | None = None,
    ) -> Any:
        """``source``: who the invocation is made for (a client ID, a rule's key; None:
        the emulator's own), whose asynchronous invocations are queued apart."""
        ...


@dataclass
class ActionTargets:
    """Where actions go; fields are None when that service is not running. Mutable: the
    emulator fills it in as its parts start."""

    publish: Callable[[InboundMessage], None] | None = None
    dynamodb: Any = None  # aiobotocore DynamoDB client
    kinesis: Any = None  # aiobotocore Kinesis client
    functions: FunctionInvoker | None = None
    # get_registry_data(api, thing) in SQL: the iot control plane's registry
    registry: Callable[[str, str], Any] | None = None


class ActionError(Exception):
    """A failed action, in the terms of the error action message."""

    def __init__(self, action: str, resource: str, message: str) -> None:
        super().__init__(message)
        self.action = action
        self.resource = resource
        self.message = message


class ActionThrottled(ActionError):
    """A failed action that a limit refused (a full queue): the engine records it like
    any failure but logs such refusals once per source and interval, not per message."""


@contextmanager
def service_errors(action: str, resource: str) -> Iterator[None]:
    """A service's error of any kind becomes the action's failure, ``Type: message``."""
    try:
        yield
    except ActionError:
        raise
    except Exception as exc:
        raise ActionError(action, resource, f"{type(exc).__name__}: {exc}") from exc


class Reference(NamedTuple):
    """A resource an action names, checked against the project when it loads."""

    kind: str  # "function" | "table" | "stream"
    name: str


class Request(Protocol):
    """A rendered action: frozen and typed (a NamedTuple: one is built per message)."""

    def describe(self) -> dict[str, Json]:
        """The request's fields under their AWS names, the payload left out (dry run)."""
        ...


class Action(Protocol[RequestT]):
    """One compiled action of one rule; the class attributes declare its type."""

    type_name: ClassVar[str]  # its key in a TopicRulePayload's action, as AWS spells it
    cloudformation_name: ClassVar[str]  # its key in AWS::IoT::TopicRule (PascalCase)
    failed_name: ClassVar[str]  # failedAction in the error action's message
    template_fields: ClassVar[tuple[str, ...]]  # dotted paths that take ${...} templates
    required_field: ClassVar[str]  # dotted path without which the action means nothing
    immediate: ClassVar[bool]  # True: ``message`` now; False: ``render``, then ``execute``

    @classmethod
    def compile(cls, params: Mapping[str, Json], templates: Mapping[str, Template]) -> Self:
        """The action with its templates (``template_fields`` present as strings, compiled
        by the caller); ValueError for a field AWS would reject when the rule is created."""
        ...

    @staticmethod
    def references(params: Mapping[str, Json]) -> tuple[Reference, ...]:
        """The functions, tables and streams the action names (templates included)."""
        ...

    def render(self, env: Env, output: Json) -> RequestT:
        """The concrete request for this message; RuleEvaluationError from a template."""
        ...

    async def execute(self, request: RequestT, targets: ActionTargets) -> None:
        """Send a rendered request to its service; ActionError on failure."""
        ...

    def message(self, env: Env, output: Json, source: InboundMessage) -> InboundMessage:
        """The message an ``immediate`` action publishes for ``source``, one hop further;
        ActionError if it cannot be made."""
        ...


def field_value(params: Mapping[str, Json], path: str) -> Json:
    """The value at a dotted path of an action's parameters, or None."""
    value: Json = params
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


class Field(NamedTuple):
    """One action field: a compiled template, or the value as written (or its default)."""

    template: Template | None
    value: Json

    @classmethod
    def of(
        cls,
        params: Mapping[str, Json],
        templates: Mapping[str, Template],
        path: str,
        default: Json = None,
    ) -> Field:
        template = templates.get(path)
        value = field_value(params, path)
        return cls(template, default if value is None else value)

    def render(self, env: Env) -> Json:
        template = self.template
        return self.value if template is None else template.render_env(env)


class QueuedAction:
    """Shared by the actions that wait for the engine's workers (services over the wire)."""

    __slots__ = ()
    immediate: ClassVar[bool] = False
    failed_name: ClassVar[str]
    type_name: ClassVar[str]

    def message(self, env: Env, output: Json, source: InboundMessage) -> InboundMessage:
        raise ActionError(self.failed_name, self.type_name, "not an immediate action")
