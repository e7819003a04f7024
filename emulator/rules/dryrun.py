"""Compiled rules and the concrete actions they would take for one message. Pure.

Shared by the engine (which then executes the actions) and ``rules test`` (which prints
them), so what a dry run shows is exactly what the engine does.
"""

from __future__ import annotations

import json

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; the standard encoder still works
    _orjson = None  # type: ignore[assignment]
from dataclasses import dataclass
from typing import Any

from emulator.project.loader import TEMPLATE_FIELDS, function_name_of
from emulator.project.model import ActionSpec, RuleSpec
from emulator.sql.context import MessageContext
from emulator.sql.statement import NO_MATCH, Statement, compile_statement
from emulator.sql.templates import Template, compile_template

Json = Any


@dataclass(frozen=True, slots=True)
class CompiledAction:
    spec: ActionSpec
    templates: dict[str, Template]  # dotted field path -> template
    # A republish action's (topic template, qos, retain), resolved once: the engine's hot path
    republish: tuple[Template, int, bool] | None = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    spec: RuleSpec
    statement: Statement
    actions: tuple[CompiledAction, ...]
    error_action: CompiledAction | None

    @property
    def name(self) -> str:
        return self.spec.name


def compile_action(spec: ActionSpec, sql_version: str) -> CompiledAction:
    templates: dict[str, Template] = {}
    for path in TEMPLATE_FIELDS.get(spec.type, ()):
        value: Any = spec.params
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str):
            templates[path] = compile_template(value, sql_version)
    republish = None
    topic = templates.get("topic")
    if spec.type == "republish" and topic is not None:
        try:
            republish = (topic, int(spec.params.get("qos", 0)), bool(spec.params.get("retain")))
        except (TypeError, ValueError):
            republish = None  # render() reports it per message, as before
    return CompiledAction(spec, templates, republish)


def compile_rule(spec: RuleSpec) -> CompiledRule:
    version = spec.aws_iot_sql_version
    return CompiledRule(
        spec,
        compile_statement(spec.sql, version),
        tuple(compile_action(a, version) for a in spec.actions),
        compile_action(spec.error_action, version) if spec.error_action else None,
    )


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # built once, not per message


def payload_bytes(output: Json) -> bytes:
    """The bytes an action sends: raw for binary pass-through, else compact JSON.

    orjson when it can (ten times faster on the chat path); integers over 64 bits take
    the standard encoder. Non-finite numbers become ``null``: ``NaN`` is not JSON.
    """
    if isinstance(output, bytes):
        return output
    if _orjson is not None:
        try:
            return _orjson.dumps(output)
        except TypeError:
            pass
    return _ENCODER.encode(output).encode()


def render(
    action: CompiledAction, ctx: MessageContext, output: Json, sql_version: str
) -> dict[str, Any]:
    """The concrete request: templates filled in, names resolved. Pure."""
    p = action.spec.params

    def field(path: str, default: Any = None) -> Any:
        template = action.templates.get(path)
        if template is not None:
            return template.render(ctx, sql_version)
        value: Any = p
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return default if value is None else value

    kind = action.spec.type
    if kind == "republish":
        return {
            "type": kind,
            "topic": field("topic"),
            "qos": int(p.get("qos", 0)),
            "retain": bool(p.get("retain", False)),
            "payload": output,
        }
    if kind == "dynamoDBv2":
        return {"type": kind, "tableName": field("putItem.tableName"), "item": output}
    if kind == "dynamoDB":
        return {
            "type": kind,
            "tableName": field("tableName"),
            "hashKeyField": field("hashKeyField"),
            "hashKeyValue": field("hashKeyValue"),
            "hashKeyType": p.get("hashKeyType", "STRING"),
            "rangeKeyField": field("rangeKeyField"),
            "rangeKeyValue": field("rangeKeyValue"),
            "rangeKeyType": p.get("rangeKeyType", "STRING"),
            "payloadField": p.get("payloadField", "payload"),
            "operation": str(p.get("operation", "INSERT")).upper(),
            "payload": output,
        }
    if kind == "kinesis":
        key = field("partitionKey")
        return {
            "type": kind,
            "streamName": field("streamName"),
            "partitionKey": key if key else (ctx.newuuid() if ctx.newuuid else _uuid()),
            "data": output,
        }
    if kind == "lambda":
        arn = str(field("functionArn"))
        return {
            "type": kind,
            "functionArn": arn,
            "functionName": function_name_of(arn),
            "payload": output,
        }
    raise ValueError(f"unknown action type {kind}")


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def dry_run(rules: list[CompiledRule], ctx: MessageContext) -> list[dict[str, Any]]:
    """Every enabled rule matching the message, its output and rendered actions."""
    results = []
    for rule in rules:
        if rule.spec.rule_disabled:
            continue
        output = rule.statement.evaluate(ctx)
        if output is NO_MATCH:
            continue
        version = rule.spec.aws_iot_sql_version
        results.append(
            {
                "rule": rule.name,
                "output": output.decode("utf-8", "replace")
                if isinstance(output, bytes)
                else output,
                "actions": [_printable(render(a, ctx, output, version)) for a in rule.actions],
            }
        )
    return results


def _printable(request: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
        for k, v in request.items()
        if k not in ("payload", "item", "data")
    }
