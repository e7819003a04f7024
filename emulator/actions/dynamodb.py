"""``dynamoDB`` (the first DynamoDB action): the SELECT output as one column of an item
whose keys come from templates (dynamodb-rule-action.md). Output that is not JSON is
written as binary, as AWS does."""

from __future__ import annotations

import json
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


class DynamoDBRequest(NamedTuple):
    table_name: str
    hash_key_field: str
    hash_key_value: Json
    hash_key_type: str
    range_key_field: str | None
    range_key_value: Json
    range_key_type: str
    payload_field: str
    operation: str  # INSERT | UPDATE | DELETE
    payload: Json

    def describe(self) -> dict[str, Json]:
        return {
            "tableName": self.table_name,
            "hashKeyField": self.hash_key_field,
            "hashKeyValue": self.hash_key_value,
            "hashKeyType": self.hash_key_type,
            "rangeKeyField": self.range_key_field,
            "rangeKeyValue": self.range_key_value,
            "rangeKeyType": self.range_key_type,
            "payloadField": self.payload_field,
            "operation": self.operation,
        }


class DynamoDBAction(QueuedAction):
    type_name: ClassVar[str] = "dynamoDB"
    cloudformation_name: ClassVar[str] = "DynamoDB"
    failed_name: ClassVar[str] = "DynamoAction"
    template_fields: ClassVar[tuple[str, ...]] = (
        "tableName",
        "hashKeyValue",
        "rangeKeyValue",
        "hashKeyField",
        "rangeKeyField",
    )
    required_field: ClassVar[str] = "tableName"

    __slots__ = ("fields", "hash_key_type", "range_key_type", "payload_field", "operation")

    def __init__(
        self,
        fields: tuple[Field, Field, Field, Field, Field],
        hash_key_type: str,
        range_key_type: str,
        payload_field: str,
        operation: str,
    ) -> None:
        self.fields = fields  # tableName, hashKeyField, hashKeyValue, rangeKey{Field,Value}
        self.hash_key_type = hash_key_type
        self.range_key_type = range_key_type
        self.payload_field = payload_field
        self.operation = operation

    @classmethod
    def compile(cls, params: Mapping[str, Json], templates: Mapping[str, Template]) -> Self:
        def of(path: str) -> Field:
            return Field.of(params, templates, path)

        return cls(
            (
                of("tableName"),
                of("hashKeyField"),
                of("hashKeyValue"),
                of("rangeKeyField"),
                of("rangeKeyValue"),
            ),
            params.get("hashKeyType", "STRING"),
            params.get("rangeKeyType", "STRING"),
            params.get("payloadField", "payload"),
            str(params.get("operation", "INSERT")).upper(),
        )

    @staticmethod
    def references(params: Mapping[str, Json]) -> tuple[Reference, ...]:
        return (Reference("table", str(field_value(params, "tableName") or "")),)

    def render(self, env: Env, output: Json) -> DynamoDBRequest:
        table, hash_field, hash_value, range_field, range_value = (
            f.render(env) for f in self.fields
        )
        return DynamoDBRequest(
            table,
            hash_field,
            hash_value,
            self.hash_key_type,
            range_field,
            range_value,
            self.range_key_type,
            self.payload_field,
            self.operation,
            output,
        )

    async def execute(self, request: DynamoDBRequest, targets: ActionTargets) -> None:
        table = request.table_name
        with service_errors(self.failed_name, str(table)):
            client = targets.dynamodb
            if client is None:
                raise ActionError(self.failed_name, table, "no DynamoDB backend is running")
            key = {request.hash_key_field: _key(request.hash_key_value, request.hash_key_type)}
            if request.range_key_field:
                key[request.range_key_field] = _key(request.range_key_value, request.range_key_type)
            if request.operation == "DELETE":
                await client.delete_item(TableName=table, Key=key)
                return
            payload = _payload_attribute(request.payload)
            if request.operation == "UPDATE":
                await client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET #p = :p",
                    ExpressionAttributeNames={"#p": request.payload_field},
                    ExpressionAttributeValues={":p": payload},
                )
            else:
                await client.put_item(TableName=table, Item={**key, request.payload_field: payload})


def _key(value: Json, kind: str) -> dict[str, Any]:
    return {"N": str(value)} if str(kind).upper() == "NUMBER" else {"S": str(value)}


def _payload_attribute(output: Json) -> dict[str, Any]:
    """JSON output as its attribute; bytes that parse as JSON likewise, others as binary."""
    if not isinstance(output, bytes):
        return to_attribute(output)
    try:
        return to_attribute(json.loads(output))
    except ValueError:
        return {"B": output}
