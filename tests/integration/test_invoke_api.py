"""The Lambda Invoke API's errors over HTTP with boto3: code, HTTP status and message as
AWS answers them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorHandle

FUNCTIONS = REPO_ROOT / "tests" / "fixtures" / "functions"
pytestmark = pytest.mark.iot_emulator(rules=[str(FUNCTIONS / "functions.yaml")], backend="moto")


async def refused(em: EmulatorHandle, **params: Any) -> tuple[str, int, str]:
    client = em.boto3_client("lambda")
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(client.invoke, **params)
    response = info.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


async def test_unknown_function(iot_emulator: EmulatorHandle) -> None:
    code, status, message = await refused(iot_emulator, FunctionName="nope", Payload=b"{}")
    arn = f"arn:aws:lambda:{iot_emulator.emulator.config.region}:"
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert message == f"Function not found: {arn}123456789012:function:nope"


async def test_a_payload_over_the_request_limit(iot_emulator: EmulatorHandle) -> None:
    got = await refused(iot_emulator, FunctionName="echo", Payload=b"x" * (300 * 1024))
    assert got[:2] == ("RequestTooLargeException", 413)


async def test_dry_run_checks_the_function_only(iot_emulator: EmulatorHandle) -> None:
    client = iot_emulator.boto3_client("lambda")
    done = await asyncio.to_thread(client.invoke, FunctionName="echo", InvocationType="DryRun")
    assert done["StatusCode"] == 204
    got = await refused(iot_emulator, FunctionName="nope", InvocationType="DryRun")
    assert got[:2] == ("ResourceNotFoundException", 404)
