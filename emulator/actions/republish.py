"""``republish``: the SELECT output as a new MQTT message (republish-rule-action.md).

Immediate: it does not wait for a worker. ``message`` renders the topic and makes the
message, one hop further than the one that triggered the rule; the engine publishes it
on the next loop turn and cuts rule loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Self

from emulator.actions.base import ActionError, ActionTargets, Field, Reference
from emulator.actions.payloads import compact_json, payload_bytes
from emulator.messages import InboundMessage
from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.templates import Template

Json = Any
_new = object.__new__


class RepublishRequest(NamedTuple):
    topic: str
    qos: int
    retain: bool
    payload: Json

    def describe(self) -> dict[str, Json]:
        return {"topic": self.topic, "qos": self.qos, "retain": self.retain}


class RepublishAction:
    type_name: ClassVar[str] = "republish"
    cloudformation_name: ClassVar[str] = "Republish"
    failed_name: ClassVar[str] = "RepublishAction"
    template_fields: ClassVar[tuple[str, ...]] = ("topic",)
    required_field: ClassVar[str] = "topic"
    immediate: ClassVar[bool] = True

    __slots__ = ("topic", "qos", "retain", "_template", "_text", "_reserved")

    def __init__(self, topic: Field, qos: int, retain: bool) -> None:
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self._template = topic.template  # unpacked for ``message``, the chat's hot path
        self._text: str = topic.value
        # '$$aws/things/x/shadow/update': AWS's escape for a reserved topic (one '$' is
        # dropped: republish-rule-action.md)
        self._reserved = str(topic.value).startswith("$$")
        if self._reserved and topic.template is None:
            self._text = self._text[1:]

    @classmethod
    def compile(cls, params: Mapping[str, Json], templates: Mapping[str, Template]) -> Self:
        try:
            qos = int(params.get("qos", 0))
        except (TypeError, ValueError):
            raise ValueError(f"qos must be 0 or 1, not {params.get('qos')!r}") from None
        topic = Field.of(params, templates, "topic")
        if topic.template is None:
            topic = Field(None, str(topic.value))
        return cls(topic, qos, bool(params.get("retain", False)))

    @staticmethod
    def references(params: Mapping[str, Json]) -> tuple[Reference, ...]:
        return ()

    def render(self, env: Env, output: Json) -> RepublishRequest:
        topic = self._text if self._template is None else self._template.render_env(env)
        if self._reserved and self._template is not None:
            topic = topic[1:]
        return RepublishRequest(topic, self.qos, self.retain, output)

    async def execute(self, request: RepublishRequest, targets: ActionTargets) -> None:
        raise ActionError(
            self.failed_name,
            self.type_name,
            "republish is immediate: the engine publishes its message",
        )

    def message(self, env: Env, output: Json, source: InboundMessage) -> InboundMessage:
        template = self._template
        try:
            if template is None:
                topic = self._text
            else:
                topic = template.render_env(env)
                if self._reserved:
                    topic = topic[1:]
        except RuleEvaluationError as exc:
            raise ActionError(self.failed_name, self.type_name, str(exc)) from None
        # Every field set by name on a bare instance: calling the dataclass costs its
        # ``__init__`` frame, about 950 of 2,650 instructions under callgrind, once per
        # republished message. A new ``InboundMessage`` field must be set here too.
        message = _new(InboundMessage)
        message.topic = topic
        try:  # payload_bytes without its frame for the usual (JSON) output
            message.payload = compact_json(output)
        except TypeError:
            message.payload = payload_bytes(output)
        message.qos = self.qos
        message.retain = self.retain
        message.client_id = None  # no client: AWS's clientid() is Undefined when republished
        message.principal = None
        message.timestamp_ms = source.timestamp_ms
        message.hops = source.hops + 1
        message.trace_id = None
        message.origin = source.client_id or source.origin
        message.source_ip = None  # AWS: republish does not pass the original IP on
        return message
