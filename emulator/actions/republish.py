"""``republish``: the SELECT output as a new MQTT message (republish-rule-action.md).

Immediate: it does not wait for a worker. ``message`` renders the topic and makes the
message, one hop further than the one that triggered the rule; the engine publishes it
on the next loop turn and cuts rule loops.

``headers`` are the MQTT 5 properties of the republished message (AWS's ``MqttHeaders``:
payloadFormatIndicator, contentType, responseTopic, correlationData, messageExpiry,
userProperties), each a substitution template; a rule without them pays nothing.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Self

from emulator.actions.base import ActionError, ActionTargets, Field, Reference
from emulator.actions.payloads import compact_json, payload_bytes
from emulator.messages import FORMAT_NAMES, InboundMessage, PublishProperties
from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError, RuleSyntaxError
from emulator.sql.templates import Template, compile_template

Json = Any
_new = object.__new__


_HEADERS = (
    "payloadFormatIndicator",
    "contentType",
    "responseTopic",
    "correlationData",
    "messageExpiry",
)
MAX_HEADER = 1024  # characters of each header value (MqttHeaders in the iot API model)
MAX_USER_PROPERTIES = 100


class RepublishRequest(NamedTuple):
    topic: str
    qos: int
    retain: bool
    payload: Json
    headers: dict[str, Json] | None = None  # rendered, as AWS spells them

    def describe(self) -> dict[str, Json]:
        described: dict[str, Json] = {"topic": self.topic, "qos": self.qos, "retain": self.retain}
        if self.headers:
            described["headers"] = self.headers
        return described


class Headers:
    """The compiled ``headers`` of a republish action: each a template or a value."""

    __slots__ = ("fields", "user_properties")

    def __init__(
        self, fields: dict[str, Field], user_properties: list[tuple[Field, Field]]
    ) -> None:
        self.fields = fields
        self.user_properties = user_properties

    @classmethod
    def compile(
        cls, params: Mapping[str, Json], templates: Mapping[str, Template]
    ) -> Headers | None:
        raw = params.get("headers")
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ValueError("headers must be a mapping")
        unknown = set(raw) - set(_HEADERS) - {"userProperties"}
        if unknown:
            raise ValueError(
                f"unknown headers {sorted(unknown)} (known: {', '.join(_HEADERS)}, userProperties)"
            )
        fields = {
            name: Field.of(params, templates, f"headers.{name}")
            for name in _HEADERS
            if raw.get(name) is not None
        }
        users = raw.get("userProperties") or []
        if not isinstance(users, list) or len(users) > MAX_USER_PROPERTIES:
            raise ValueError(f"headers.userProperties must be a list of 1 to {MAX_USER_PROPERTIES}")
        pairs = []
        for item in users:
            if not isinstance(item, Mapping) or "key" not in item or "value" not in item:
                raise ValueError("each of headers.userProperties needs a key and a value")
            pairs.append((_field(item["key"]), _field(item["value"])))
        return cls(fields, pairs)

    def render(self, env: Env) -> dict[str, Json]:
        rendered: dict[str, Json] = {
            name: _limited(name, str(f.render(env))) for name, f in self.fields.items()
        }
        if self.user_properties:
            rendered["userProperties"] = [
                {"key": str(k.render(env)), "value": _limited("userProperties", str(v.render(env)))}
                for k, v in self.user_properties
            ]
        return rendered


def _field(value: Json) -> Field:
    if isinstance(value, str) and "${" in value:
        try:
            return Field(compile_template(value), value)
        except RuleSyntaxError as exc:
            raise ValueError(f"headers.userProperties: {exc.message}") from None
    return Field(None, value)


def _limited(name: str, value: str) -> str:
    if len(value) > MAX_HEADER:
        raise RuleEvaluationError(f"headers.{name} is over {MAX_HEADER} characters")
    return value


def properties_of(headers: Mapping[str, Json], timestamp_ms: int) -> PublishProperties:
    """The MQTT 5 properties that rendered headers give, checked as AWS checks them
    (republish-rule-action.md): a payload format indicator AWS names, correlation data in
    base64, a message expiry in whole seconds, a response topic without wildcards."""
    fmt = headers.get("payloadFormatIndicator")
    if fmt is not None and fmt not in FORMAT_NAMES:
        raise RuleEvaluationError(
            f"headers.payloadFormatIndicator must be {' or '.join(FORMAT_NAMES)}, not {fmt!r}"
        )
    correlation = headers.get("correlationData")
    data = None
    if correlation is not None:
        try:
            data = base64.b64decode(correlation, validate=True)
        except (binascii.Error, ValueError):
            raise RuleEvaluationError("headers.correlationData must be base64") from None
    expiry = headers.get("messageExpiry")
    expires_at = None
    if expiry is not None:
        try:
            seconds = int(expiry)
        except ValueError:
            raise RuleEvaluationError(
                f"headers.messageExpiry must be a number of seconds, not {expiry!r}"
            ) from None
        expires_at = timestamp_ms + 1000 * min(max(seconds, 1), 604_800)
    response = headers.get("responseTopic")
    if response is not None and ("+" in response or "#" in response):
        raise RuleEvaluationError("headers.responseTopic may not contain wildcards")
    return PublishProperties(
        FORMAT_NAMES.index(fmt) if fmt is not None else 0,
        expires_at,
        headers.get("contentType"),
        response,
        data,
        tuple((u["key"], u["value"]) for u in headers.get("userProperties", ())),
    )


class RepublishAction:
    type_name: ClassVar[str] = "republish"
    cloudformation_name: ClassVar[str] = "Republish"
    failed_name: ClassVar[str] = "RepublishAction"
    template_fields: ClassVar[tuple[str, ...]] = ("topic",) + tuple(
        f"headers.{name}" for name in _HEADERS
    )
    required_field: ClassVar[str] = "topic"
    immediate: ClassVar[bool] = True

    __slots__ = ("topic", "qos", "retain", "headers", "_template", "_text", "_reserved")

    def __init__(
        self, topic: Field, qos: int, retain: bool, headers: Headers | None = None
    ) -> None:
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self.headers = headers
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
        return cls(
            topic, qos, bool(params.get("retain", False)), Headers.compile(params, templates)
        )

    @staticmethod
    def references(params: Mapping[str, Json]) -> tuple[Reference, ...]:
        return ()

    def render(self, env: Env, output: Json) -> RepublishRequest:
        topic = self._text if self._template is None else self._template.render_env(env)
        if self._reserved and self._template is not None:
            topic = topic[1:]
        headers = self.headers.render(env) if self.headers is not None else None
        return RepublishRequest(topic, self.qos, self.retain, output, headers)

    async def execute(self, request: RepublishRequest, targets: ActionTargets) -> None:
        raise ActionError(
            self.failed_name,
            self.type_name,
            "republish is immediate: the engine publishes its message",
        )

    def message(self, env: Env, output: Json, source: InboundMessage) -> InboundMessage:
        template = self._template
        properties = None
        try:
            if template is None:
                topic = self._text
            else:
                topic = template.render_env(env)
                if self._reserved:
                    topic = topic[1:]
            if self.headers is not None:
                properties = properties_of(self.headers.render(env), source.timestamp_ms)
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
        message.properties = properties
        return message
