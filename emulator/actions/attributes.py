"""JSON values <-> DynamoDB ``AttributeValue``s: what the DynamoDB actions write and what
``get_dynamodb()`` in rule SQL reads back."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

Json = Any


def to_attribute(value: Json) -> dict[str, Any]:
    """JSON value -> DynamoDB AttributeValue (each column the DynamoDB actions write)."""
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


def from_attribute(attr: dict[str, Any]) -> Json:
    """A DynamoDB attribute as JSON (binary as base64 text, numbers as int or float);
    ValueError for a type it does not know."""
    kind, value = next(iter(attr.items()))
    if kind == "S":
        return value
    if kind == "B":
        return base64.b64encode(value).decode()
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_attribute(v) for k, v in value.items()}
    if kind == "L":
        return [from_attribute(v) for v in value]
    if kind == "SS":
        return list(value)
    if kind == "BS":
        return [base64.b64encode(v).decode() for v in value]
    if kind == "NS":
        return [from_attribute({"N": v}) for v in value]
    raise ValueError(f"unsupported attribute type {kind}")
