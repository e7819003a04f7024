"""``lambda``: the SELECT output as the event of an asynchronous invocation of a local
function (lambda-rule-action.md); the ARN's function name picks the function."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Self

from emulator.actions.base import (
    ACTION_SOURCE,
    ActionError,
    ActionTargets,
    ActionThrottled,
    Field,
    QueuedAction,
    Reference,
    field_value,
    service_errors,
)
from emulator.actions.payloads import payload_bytes
from emulator.arns import function_name_of
from emulator.sql.context import Env
from emulator.sql.templates import Template

Json = Any


class LambdaRequest(NamedTuple):
    function_arn: str
    function_name: str
    payload: Json

    def describe(self) -> dict[str, Json]:
        return {"functionArn": self.function_arn, "functionName": self.function_name}


class LambdaAction(QueuedAction):
    type_name: ClassVar[str] = "lambda"
    cloudformation_name: ClassVar[str] = "Lambda"
    failed_name: ClassVar[str] = "LambdaAction"
    template_fields: ClassVar[tuple[str, ...]] = ("functionArn",)
    required_field: ClassVar[str] = "functionArn"

    __slots__ = ("function_arn",)

    def __init__(self, function_arn: Field) -> None:
        self.function_arn = function_arn

    @classmethod
    def compile(cls, params: Mapping[str, Json], templates: Mapping[str, Template]) -> Self:
        return cls(Field.of(params, templates, "functionArn"))

    @staticmethod
    def references(params: Mapping[str, Json]) -> tuple[Reference, ...]:
        arn = str(field_value(params, "functionArn") or "")
        return (Reference("function", function_name_of(arn)),)

    @classmethod
    def invoking(cls, function: str) -> dict[str, Json]:
        """The action as written that invokes ``function`` (SAM's ``IoTRule`` event)."""
        return {cls.type_name: {"functionArn": function}}

    def render(self, env: Env, output: Json) -> LambdaRequest:
        arn = str(self.function_arn.render(env))
        return LambdaRequest(arn, function_name_of(arn), output)

    async def execute(self, request: LambdaRequest, targets: ActionTargets) -> None:
        function = request.function_name
        with service_errors(self.failed_name, function):
            if targets.functions is None:
                raise ActionError(self.failed_name, function, "no Lambda service is running")
            payload = payload_bytes(request.payload)
            source = ACTION_SOURCE.get()  # the function queues it with this source's events
            if source is None:
                result = await targets.functions.invoke(function, payload, "Event")
            else:
                result = await targets.functions.invoke(function, payload, "Event", source)
            status = getattr(result, "status_code", 202)
            if status >= 300:
                error = getattr(result, "error", "") or getattr(result, "payload", b"")
                # 429: this source's share of the function's event queue is full
                failure = ActionThrottled if status == 429 else ActionError
                raise failure(
                    self.failed_name, function, f"Lambda invoke failed ({status}): {error!r}"
                )
