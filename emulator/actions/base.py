"""What actions need from the rest of the emulator, as small protocols."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from emulator.messages import InboundMessage


class FunctionInvoker(Protocol):
    async def invoke(self, name: str, payload: bytes, invocation_type: str = "Event") -> Any: ...


@dataclass
class ActionTargets:
    """Where actions go; fields are None when that service is not running."""

    publish: Callable[[InboundMessage], None] | None = None
    dynamodb: Any = None  # aiobotocore DynamoDB client
    kinesis: Any = None  # aiobotocore Kinesis client
    functions: FunctionInvoker | None = None


class ActionError(Exception):
    """A failed action, in the terms of the error action message."""

    def __init__(self, action: str, resource: str, message: str) -> None:
        super().__init__(message)
        self.action = action
        self.resource = resource
        self.message = message
