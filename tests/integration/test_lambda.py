"""Lambda emulation through the user-facing pytest plugin: boto3 against the real HTTP
API, handlers in awslambdaric workers, faults reported and workers replaced."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle

FUNCTIONS = REPO_ROOT / "tests" / "fixtures" / "functions"
pytestmark = pytest.mark.iot_emulator(rules=[str(FUNCTIONS / "functions.yaml")], backend="moto")


async def invoke(
    em: EmulatorHandle, name: str, event: Any, kind: str = "RequestResponse"
) -> dict[str, Any]:
    client = em.boto3_client("lambda")
    response = await asyncio.to_thread(
        client.invoke, FunctionName=name, InvocationType=kind, Payload=json.dumps(event).encode()
    )
    body = response["Payload"].read()
    return {**response, "body": json.loads(body) if body else None}


async def test_invoke_with_boto3(iot_emulator: EmulatorHandle) -> None:
    result = await invoke(iot_emulator, "echo", {"hello": "world"})
    assert result["StatusCode"] == 200 and "FunctionError" not in result
    body = result["body"]
    assert body["event"] == {"hello": "world"} and body["function"] == "echo"
    assert 0 < body["remaining_ms"] <= 5000
    again = await invoke(iot_emulator, "echo", {})
    assert again["body"]["pid"] == body["pid"]  # warm worker reused
    event = await invoke(iot_emulator, "echo", {}, "Event")
    assert event["StatusCode"] == 202


async def test_unknown_function_is_resource_not_found(iot_emulator: EmulatorHandle) -> None:
    with pytest.raises(ClientError) as info:
        await invoke(iot_emulator, "nope", {})
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_handler_exception_is_reported_with_traceback(
    iot_emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = await invoke(iot_emulator, "fail", {"why": "testing"})
    assert result["FunctionError"] == "Unhandled"
    assert result["body"]["errorType"] == "ValueError"
    assert result["body"]["errorMessage"] == "boom: testing"
    request_id = result["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    logged = [r.getMessage() for r in caplog.records if "boom: testing" in r.getMessage()]
    # Logged once with the request id and the stack trace (the handler's file and line).
    assert any(request_id in m and "handler.py" in m for m in logged), logged


async def test_timeout_kills_and_replaces_the_worker(iot_emulator: EmulatorHandle) -> None:
    pool = iot_emulator.emulator.functions.pools["slow"]
    first = await invoke(iot_emulator, "slow", {"seconds": 0})
    pid = pool.health()["pids"][0]
    result = await invoke(iot_emulator, "slow", {"seconds": 30})
    assert result["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in result["body"]["errorMessage"]
    assert pid not in pool.health()["pids"]
    after = await invoke(iot_emulator, "slow", {"seconds": 0})
    assert after["body"] == first["body"] == {"slept": 0}
    assert pool.health()["pids"] and pid not in pool.health()["pids"]


async def test_crash_and_megabytes_of_output(iot_emulator: EmulatorHandle) -> None:
    crashed = await invoke(iot_emulator, "crash", {})
    assert crashed["FunctionError"] == "Unhandled"
    assert "Runtime exited with error: exit status 3" in crashed["body"]["errorMessage"]
    chatty = await invoke(iot_emulator, "chatty", {"size": 3_000_000})
    assert chatty["body"] == {"printed": True}
    # The broker is unaffected.
    client = await iot_emulator.mqtt_client()
    await client.subscribe("still/alive", 0)
    await client.publish("still/alive", b"yes")
    assert (await client.next_message()).payload == b"yes"


async def test_handler_publishes_through_the_data_plane(iot_emulator: EmulatorHandle) -> None:
    client = await iot_emulator.mqtt_client()
    await client.subscribe("from/lambda", 1)
    await invoke(iot_emulator, "publish", {"topic": "from/lambda", "body": {"n": 1}})
    msg = await client.next_message()
    assert msg.json() == {"n": 1} and msg.qos == 1


async def test_data_plane_publish_and_retained_messages(iot_emulator: EmulatorHandle) -> None:
    iot = iot_emulator.boto3_client("iot-data")
    client = await iot_emulator.mqtt_client()
    await client.subscribe("dp/+", 1)
    await asyncio.to_thread(iot.publish, topic="dp/a", qos=1, payload=b"one", retain=True)
    assert (await client.next_message()).payload == b"one"
    got = await asyncio.to_thread(iot.get_retained_message, topic="dp/a")
    assert got["payload"] == b"one" and got["qos"] == 1
    listed = await asyncio.to_thread(iot.list_retained_messages)
    assert [t["topic"] for t in listed["retainedTopics"]] == ["dp/a"]
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(iot.get_retained_message, topic="dp/none")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_failing_actions_reach_the_error_action_once(
    iot_emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    watcher = await iot_emulator.mqtt_client()
    await watcher.subscribe("faults/errors", 1)
    pub = await iot_emulator.mqtt_client("faulty-publisher")
    await pub.publish("faults/lambda", b'{"why": "rule"}', qos=1)
    error = (await watcher.next_message(timeout=20)).json()
    assert error["ruleName"] == "FailingLambda" and error["topic"] == "faults/lambda"
    assert error["clientId"] == "faulty-publisher"
    assert base64.b64decode(error["base64OriginalPayload"]) == b'{"why": "rule"}'
    failed = {f["failedAction"]: f for f in error["failures"]}
    assert set(failed) == {"DynamoDBv2Action"}  # the async Lambda invoke itself succeeds (202)
    assert failed["DynamoDBv2Action"]["failedResource"] == "missing-lambda"
    assert "ResourceNotFoundException" in failed["DynamoDBv2Action"]["errorMessage"]
    assert any(
        "FailingLambda" in r.getMessage() and "missing-lambda" in r.getMessage()
        for r in caplog.records
    )


async def test_editing_the_handler_changes_behaviour_without_restart(
    tmp_path: Path, iot_emulator_factory: EmulatorFactory
) -> None:
    code = tmp_path / "code"
    shutil.copytree(FUNCTIONS / "echo", code)
    (tmp_path / "f.yaml").write_text(
        "functions:\n  - {functionName: v, handler: handler.version, codeUri: code}\n"
    )
    em = (await iot_emulator_factory(rules=[str(tmp_path / "f.yaml")])).emulator
    first = await em.functions.invoke("v", b"{}")
    assert json.loads(first.payload) == {"version": 1}
    pool = em.functions.pools["v"]
    reloaded = asyncio.ensure_future(pool.reloaded.wait())
    source = code / "handler.py"
    source.write_text(source.read_text().replace('{"version": 1}', '{"version": 2}'))
    async with asyncio.timeout(10):
        await reloaded
    second = await em.functions.invoke("v", b"{}")
    assert json.loads(second.payload) == {"version": 2}


async def test_sql_functions_call_the_local_dynamodb_and_lambda(
    iot_emulator: EmulatorHandle,
) -> None:
    dynamodb = iot_emulator.boto3_client("dynamodb")
    await asyncio.to_thread(
        dynamodb.put_item,
        TableName="labels",
        Item={"id": {"S": "t-1"}, "label": {"S": "kitchen"}},
    )
    client = await iot_emulator.mqtt_client()
    await client.subscribe("enrich/out", 1)
    await client.publish("enrich/in", json.dumps({"id": "t-1", "n": 21}), qos=1)
    out = await client.message_on("enrich/out", timeout=20)
    assert out.json() == {"label": "kitchen", "n": 21}
    await client.publish("enrich/in", json.dumps({"id": "nope", "n": 1}), qos=1)
    missing = await client.message_on("enrich/out", timeout=20)
    assert missing.json() == {"n": 1}  # no item: get_dynamodb() is Undefined, the key is left out
