"""What an expression sees when it runs: the message (``MessageContext``) and the current
document (``Env``).

The language is pure: it reads no clock, draws no random number and makes no call of its
own. Everything that would need one comes in through the message context, supplied by
its caller (the rules engine, the ``rules`` command, a test):

- ``timestamp_ms``: ``timestamp()`` and the time functions read the message's time;
- ``newuuid`` and ``random``: the sources behind ``newuuid()``, ``traceid()`` (when the
  message has no trace ID) and ``rand()``; a function whose source is absent fails with a
  ``RuleEvaluationError`` rather than reach for a global one;
- ``external``: ``get_dynamodb()`` and ``aws_lambda()``, run by the engine off the loop.

This module sits below the evaluator, the function registry and the statement, which all
read it (and so do not import each other to name these types).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from emulator.messages import PublishProperties
from emulator.sql.values import parse_json

Json = Any


class ExternalCalls(Protocol):
    """The I/O behind ``get_dynamodb()`` and ``aws_lambda()``; the engine implements it."""

    def get_dynamodb(
        self,
        table: str,
        partition_key_name: str,
        partition_key_value: Json,
        sort_key_name: str | None,
        sort_key_value: Json | None,
        role_arn: str,
    ) -> Json | None: ...

    def aws_lambda(self, function_arn: str, payload: Json) -> Json: ...

    def get_registry_data(self, registry_api: str, thing_name: str, role_arn: str) -> Json: ...


@dataclass(slots=True)
class MessageContext:
    """One incoming message as the SQL sees it. The payload is parsed once, on first use,
    and shared by every rule that evaluates this context."""

    topic: str
    payload: bytes
    client_id: str | None = None  # None: not from an MQTT client (clientid() is "n/a")
    principal: str | None = None
    source_ip: str | None = None  # sourceip(): the publishing client's address
    timestamp_ms: int = 0
    trace_id: str | None = None
    newuuid: Callable[[], str] | None = None
    random: Callable[[], float] | None = None
    external: ExternalCalls | None = None
    account_id: str = "123456789012"
    properties: PublishProperties | None = None  # MQTT 5: get_mqtt_property() and co.
    _doc: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    @property
    def document(self) -> Any:
        if not self._parsed:
            self._doc = parse_json(self.payload)
            self._parsed = True
        return self._doc


class Env:
    """The document an expression reads (the payload, or an array element inside a nested
    SELECT), with the message it came from. A plain slotted class: one is built per
    message and per nested element, so construction must stay cheap.

    ``variables``: the values of the statement's SET clause, by name with its '@', set by
    the statement before SELECT and WHERE run; the action templates rendered with the
    same ``Env`` read them too. Unset (``variables_of`` gives None) when the statement
    has no SET: the usual statement pays nothing for it."""

    __slots__ = ("doc", "msg", "sql_version", "raw", "variables")

    variables: dict[str, Any]

    def __init__(self, doc: Any, msg: MessageContext, sql_version: str, raw: bytes) -> None:
        self.doc = doc
        self.msg = msg
        self.sql_version = sql_version
        self.raw = raw

    def child(self, doc: Any) -> Env:
        env = Env(doc, self.msg, self.sql_version, self.raw)
        variables = variables_of(self)
        if variables is not None:
            env.variables = variables
        return env


def variables_of(env: Env) -> dict[str, Any] | None:
    """The SET clause's values this ``Env`` carries, or None."""
    return getattr(env, "variables", None)
