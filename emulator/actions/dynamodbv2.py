"""``dynamoDBv2``: each column of the SELECT output becomes an attribute of one item
(dynamodb-v2-rule-action.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Self

from emulator.actions.attributes import to_attribute
from emulator.actions.base import (
    ActionError,
    ActionTargets,
    Field,
    QueuedAction,
    Reference,
    field_value,
    service_errors,
)
from emulator.sql.context import Env
from emulator.sql.templates import Template

Json = Any


class PutItemRequest(NamedTuple):
    table_name: str
    item: Json

    def describe(self) -> dict[str, Json]:
        return {"tableName": self.table_name}


class DynamoDBv2Action(QueuedAction):
    type_name: ClassVar[str] = "dynamoDBv2"
    cloudformation_name: ClassVar[str] = "DynamoDBv2"
    failed_name: ClassVar[str] = "DynamoDBv2Action"
    template_fields: ClassVar[tuple[str, ...]] = ("putItem.tableName",)
    required_field: ClassVar[str] = "putItem.tableName"

    __slots__ = ("table_name",)

    def __init__(self, table_name: Field) -> None:
        self.table_name = table_name

    @classmethod
    def compile(cls, params: Mapping[str, Json], templates: Mapping[str, Template]) -> Self:
        return cls(Field.of(params, templates, "putItem.tableName"))

    @staticmethod
    def references(params: Mapping[str, Json]) -> tuple[Reference, ...]:
        return (Reference("table", str(field_value(params, "putItem.tableName") or "")),)

    def render(self, env: Env, output: Json) -> PutItemRequest:
        return PutItemRequest(self.table_name.render(env), output)

    async def execute(self, request: PutItemRequest, targets: ActionTargets) -> None:
        table = request.table_name
        with service_errors(self.failed_name, str(table)):
            if targets.dynamodb is None:
                raise ActionError(self.failed_name, table, "no DynamoDB backend is running")
            item = request.item
            if not isinstance(item, dict):
                raise ActionError(
                    self.failed_name, table, "dynamoDBv2 needs the SQL output to be a JSON object"
                )
            await targets.dynamodb.put_item(
                TableName=table, Item={k: to_attribute(v) for k, v in item.items()}
            )
