"""``kinesis``: the SELECT output as one record of a stream (kinesis-rule-action.md).
Without a partition key, AWS uses a fresh UUID per message; it comes from the message
context's UUID source, like SQL ``newuuid()``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Self

from emulator.actions.base import (
    ActionError,
    ActionTargets,
    Field,
    QueuedAction,
    Reference,
    field_value,
    service_errors,
)
from emulator.actions.payloads import payload_bytes
from emulator.sql.context import Env
from emulator.sql.templates import Template

Json = Any


class KinesisRequest(NamedTuple):
    stream_name: str
    partition_key: str
    data: Json

    def describe(self) -> dict[str, Json]:
        return {"streamName": self.stream_name, "partitionKey": self.partition_key}


class KinesisAction(QueuedAction):
    type_name: ClassVar[str] = "kinesis"
    cloudformation_name: ClassVar[str] = "Kinesis"
    failed_name: ClassVar[str] = "KinesisAction"
    template_fields: ClassVar[tuple[str, ...]] = ("streamName", "partitionKey")
    required_field: ClassVar[str] = "streamName"

    __slots__ = ("stream_name", "partition_key")

    def __init__(self, stream_name: Field, partition_key: Field) -> None:
        self.stream_name = stream_name
        self.partition_key = partition_key

    @classmethod
    def compile(cls, params: Mapping[str, Json], templates: Mapping[str, Template]) -> Self:
        return cls(
            Field.of(params, templates, "streamName"), Field.of(params, templates, "partitionKey")
        )

    @staticmethod
    def references(params: Mapping[str, Json]) -> tuple[Reference, ...]:
        return (Reference("stream", str(field_value(params, "streamName") or "")),)

    def render(self, env: Env, output: Json) -> KinesisRequest:
        key = self.partition_key.render(env)
        if not key:
            source = env.msg.newuuid
            key = source() if source is not None else str(uuid.uuid4())
        return KinesisRequest(self.stream_name.render(env), key, output)

    async def execute(self, request: KinesisRequest, targets: ActionTargets) -> None:
        stream = request.stream_name
        with service_errors(self.failed_name, str(stream)):
            if targets.kinesis is None:
                raise ActionError(self.failed_name, stream, "no Kinesis backend is running")
            await targets.kinesis.put_record(
                StreamName=stream,
                Data=payload_bytes(request.data),
                PartitionKey=str(request.partition_key),
            )
