"""``get_dynamodb()`` and ``aws_lambda()`` in rule SQL, against the local services.

The SQL evaluator is synchronous (it runs in the broker's callback, the hot path), and these
two functions need I/O. A rule that uses them is therefore evaluated in a thread of the
engine's own bounded pool (engine.py; never the loop's default executor): the functions
block that thread on a coroutine submitted to the event loop, where the aiobotocore client
and the Lambda service live, for at most ``TIMEOUT``. Rules without them never leave the
loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from decimal import Decimal
from typing import Any

from emulator.actions.attributes import from_attribute, to_attribute
from emulator.actions.base import ActionTargets
from emulator.sql.errors import RuleEvaluationError

Json = Any
TIMEOUT = 30.0  # seconds a SQL function call may take before the rule fails


def key_attribute(value: Json) -> dict[str, Any]:
    """A key value as a DynamoDB attribute (keys are strings, numbers or binary)."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise RuleEvaluationError(
            f"get_dynamodb: a key value must be a string or a number, got {value!r}"
        )
    return to_attribute(value)


def item_json(item: dict[str, Any]) -> Json:
    """A DynamoDB item as the JSON that ``get_dynamodb()`` returns."""
    try:
        return {k: from_attribute(v) for k, v in item.items()}
    except ValueError as exc:
        raise RuleEvaluationError(f"get_dynamodb: {exc}") from None


class LoopExternalCalls:
    """``ExternalCalls`` for a statement evaluated off the loop (see the module docstring)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, targets: ActionTargets, source: Hashable = None
    ) -> None:
        self.loop = loop
        self.targets = targets
        self.source = source  # the message's client (or rule): whom ``aws_lambda`` calls for

    def _wait(self, coro: Any, what: str) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(TIMEOUT)
        except TimeoutError as exc:
            future.cancel()
            raise RuleEvaluationError(f"{what}: no answer within {TIMEOUT:.0f} s") from exc
        except RuleEvaluationError:
            raise
        except Exception as exc:
            raise RuleEvaluationError(f"{what}: {exc}") from exc

    def get_dynamodb(
        self,
        table: str,
        partition_key_name: str,
        partition_key_value: Json,
        sort_key_name: str | None,
        sort_key_value: Json | None,
        role_arn: str,
    ) -> Json | None:
        client = self.targets.dynamodb
        if client is None:
            raise RuleEvaluationError("get_dynamodb: no DynamoDB backend is running")
        key = {str(partition_key_name): key_attribute(partition_key_value)}
        if sort_key_name is not None:
            key[str(sort_key_name)] = key_attribute(sort_key_value)
        response = self._wait(
            client.get_item(TableName=str(table), Key=key, ConsistentRead=True),
            f"get_dynamodb({table})",
        )
        item = response.get("Item")
        return None if item is None else item_json(item)

    def get_registry_data(self, registry_api: str, thing_name: str, role_arn: str) -> Json:
        registry = self.targets.registry
        if registry is None:
            raise RuleEvaluationError("get_registry_data: no thing registry is running")

        async def read() -> Json:  # on the loop, where the registry changes
            return registry(registry_api, thing_name)

        return self._wait(read(), f"get_registry_data({registry_api}, {thing_name})")

    def aws_lambda(self, function_arn: str, payload: Json) -> Json:
        functions = self.targets.functions
        if functions is None:
            raise RuleEvaluationError("aws_lambda: no Lambda service is running")
        body = json.dumps(payload, default=_json_default).encode()
        result = self._wait(
            functions.invoke(function_arn, body, "RequestResponse", self.source),
            f"aws_lambda({function_arn})",
        )
        if result.status_code >= 400 or result.function_error:
            detail = bytes(result.payload).decode(errors="replace")[:500]
            raise RuleEvaluationError(f"aws_lambda({function_arn}) failed: {detail}")
        try:
            return json.loads(result.payload) if result.payload else None
        except ValueError as exc:
            raise RuleEvaluationError(
                f"aws_lambda({function_arn}) returned a payload that is not JSON"
            ) from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON: {value!r}")
