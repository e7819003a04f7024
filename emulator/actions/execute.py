"""Executes rendered action requests against the real services (one code path for every
backend: aiobotocore clients pointed at moto, DynamoDB Local/kinesis-mock or anything
else). Names of failed actions follow AWS's error messages (``DynamoDBv2Action``...)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from emulator.actions.base import ActionError, ActionTargets
from emulator.rules.dryrun import payload_bytes

FAILED_ACTION_NAMES = {
    "republish": "RepublishAction",
    "dynamoDBv2": "DynamoDBv2Action",
    "dynamoDB": "DynamoAction",
    "kinesis": "KinesisAction",
    "lambda": "LambdaAction",
}


def to_attribute(value: Any) -> dict[str, Any]:
    """JSON value -> DynamoDB AttributeValue (what dynamoDBv2 does with each column)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [to_attribute(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    if isinstance(value, bytes):
        return {"B": value}
    return {"S": str(value)}


async def execute(request: dict[str, Any], targets: ActionTargets) -> None:
    """Run one async action (DynamoDB, Kinesis, Lambda); raise ActionError on failure."""
    kind = request["type"]
    name = FAILED_ACTION_NAMES[kind]
    try:
        if kind == "dynamoDBv2":
            table = request["tableName"]
            if targets.dynamodb is None:
                raise ActionError(name, table, "no DynamoDB backend is running")
            item = request["item"]
            if not isinstance(item, dict):
                raise ActionError(
                    name, table, "dynamoDBv2 needs the SQL output to be a JSON object"
                )
            await targets.dynamodb.put_item(
                TableName=table, Item={k: to_attribute(v) for k, v in item.items()}
            )
        elif kind == "dynamoDB":
            await _dynamodb_v1(request, targets, name)
        elif kind == "kinesis":
            stream = request["streamName"]
            if targets.kinesis is None:
                raise ActionError(name, stream, "no Kinesis backend is running")
            await targets.kinesis.put_record(
                StreamName=stream,
                Data=payload_bytes(request["data"]),
                PartitionKey=str(request["partitionKey"]),
            )
        elif kind == "lambda":
            function = request["functionName"]
            if targets.functions is None:
                raise ActionError(name, function, "no Lambda service is running")
            result = await targets.functions.invoke(
                function, payload_bytes(request["payload"]), "Event"
            )
            status = getattr(result, "status_code", 202)
            if status >= 300:
                error = getattr(result, "error", "") or getattr(result, "payload", b"")
                raise ActionError(name, function, f"Lambda invoke failed ({status}): {error!r}")
        else:
            raise ActionError(name, kind, f"{kind} is not an asynchronous action")
    except ActionError:
        raise
    except Exception as exc:  # a service error of any kind becomes the action's failure
        resource = (
            request.get("tableName")
            or request.get("streamName")
            or request.get("functionName")
            or kind
        )
        raise ActionError(name, str(resource), f"{type(exc).__name__}: {exc}") from exc


async def _dynamodb_v1(request: dict[str, Any], targets: ActionTargets, name: str) -> None:
    table = request["tableName"]
    if targets.dynamodb is None:
        raise ActionError(name, table, "no DynamoDB backend is running")

    def key_value(value: Any, kind: str) -> dict[str, Any]:
        return {"N": str(value)} if str(kind).upper() == "NUMBER" else {"S": str(value)}

    key = {request["hashKeyField"]: key_value(request["hashKeyValue"], request["hashKeyType"])}
    if request.get("rangeKeyField"):
        key[request["rangeKeyField"]] = key_value(request["rangeKeyValue"], request["rangeKeyType"])
    operation = request["operation"]
    if operation == "DELETE":
        await targets.dynamodb.delete_item(TableName=table, Key=key)
        return
    output = request["payload"]
    payload = (
        to_attribute(output)
        if not isinstance(output, bytes)
        else to_attribute(json.loads(output))
        if _is_json(output)
        else {"B": output}
    )
    if operation == "UPDATE":
        await targets.dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #p = :p",
            ExpressionAttributeNames={"#p": request["payloadField"]},
            ExpressionAttributeValues={":p": payload},
        )
    else:
        await targets.dynamodb.put_item(
            TableName=table, Item={**key, request["payloadField"]: payload}
        )


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True
