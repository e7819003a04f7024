"""Node.js functions as AWS runs them: AWS's npm ``aws-lambda-ric`` in each worker, the same
Runtime API as the Python workers, through the Invoke API with boto3.

The functions (tests/fixtures/node-functions) are copied out of the checkout first, as a
user's project would be: a bare ``import "@aws-sdk/..."`` then resolves only through the
runtime's NODE_PATH, not by walking up to the repository's node_modules.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "node-functions"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The fixture's functions outside the checkout; the template's path."""
    shutil.copytree(FIXTURE, tmp_path / "project")
    return tmp_path / "project" / "template.yaml"


@pytest.fixture
async def node(project: Path, iot_emulator_factory: EmulatorFactory) -> EmulatorHandle:
    return await iot_emulator_factory(rules=[str(project)], backend="moto")


async def invoke(em: EmulatorHandle, name: str, event: Any) -> dict[str, Any]:
    client = em.boto3_client("lambda")
    response = await asyncio.to_thread(
        client.invoke, FunctionName=name, Payload=json.dumps(event).encode()
    )
    body = response["Payload"].read()
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    return {**response, "body": json.loads(body) if body else None, "request_id": request_id}


async def test_a_commonjs_async_handler_gets_the_event_context_and_environment(
    node: EmulatorHandle,
) -> None:
    result = await invoke(node, "node-echo", {"hello": "world"})
    assert result["StatusCode"] == 200 and "FunctionError" not in result, result["body"]
    body = result["body"]
    assert body["event"] == {"hello": "world"}
    assert body["sdk"] == "function"  # require("@aws-sdk/lib-dynamodb") without shipping it
    context = body["context"]
    assert context["functionName"] == "node-echo"
    assert context["functionVersion"] == "$LATEST"
    assert context["invokedFunctionArn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:node-echo"
    )
    assert context["memoryLimitInMB"] == "256"  # Globals' MemorySize, as a string as AWS's
    assert context["awsRequestId"] == result["request_id"]
    assert context["logGroupName"] == "/aws/lambda/node-echo"
    assert 0 < context["remaining"] <= 5000  # Globals' Timeout
    # Environment: Globals' variables merged with the function's, intrinsics resolved.
    assert body["env"] == {
        "GREETING": "hello",
        "TABLE_NAME": "node-items",
        "TABLE_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/node-items",
        "ECHO_SAYS": "hello from us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_nodejs20.x",
        "AWS_REGION": "us-east-1",
    }
    again = await invoke(node, "node-echo", {})
    assert again["body"]["pid"] == body["pid"]  # the warm worker reused
    assert again["body"]["context"]["awsRequestId"] != context["awsRequestId"]


async def test_a_callback_handler_returns_through_invoke(node: EmulatorHandle) -> None:
    result = await invoke(node, "node-callback", {"n": 1})
    assert "FunctionError" not in result, result["body"]
    assert result["body"] == {
        "style": "callback",
        "got": {"n": 1},
        "requestId": result["request_id"],
    }


async def test_es_modules_by_package_type_and_by_extension(node: EmulatorHandle) -> None:
    result = await invoke(node, "node-mjs", {})
    assert "FunctionError" not in result, result["body"]
    assert result["body"]["format"] == "mjs" and result["body"]["version"] == 1
    client = await node.mqtt_client("watcher")
    item_id = uuid.uuid4().hex
    await client.subscribe(f"node/out/{item_id}", 1)
    result = await invoke(node, "node-esm", {"id": item_id})
    assert "FunctionError" not in result, result["body"]
    # The SDK v3 the runtime provides reached the emulator's DynamoDB and IoT data plane.
    assert result["body"]["format"] == "esm"
    assert "node-items" in result["body"]["tables"]
    assert result["body"]["item"] == {"id": item_id, "n": 1}
    published = await client.message_on(f"node/out/{item_id}", timeout=10)
    assert published.json() == {"item": {"id": item_id, "n": 1}}


async def test_a_thrown_error_has_aws_shape_and_is_logged_with_the_request_id(
    node: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = await invoke(node, "node-fail", {"order": 7})
    assert result["FunctionError"] == "Unhandled"
    body = result["body"]
    assert body["errorType"] == "OrderError"
    assert body["errorMessage"] == "no order 7"
    assert isinstance(body["trace"], list) and body["trace"][0] == "OrderError: no order 7"
    assert any("src/app.js" in line for line in body["trace"]), body["trace"]
    rid = result["request_id"]
    lines = [r.getMessage() for r in caplog.records if r.name == "lambda.node-fail"]
    # console.log as AWS's client writes it (time, request id, level, text), under our id.
    assert any(f"[{rid}]" in m and f"\t{rid}\tINFO\tabout to fail" in m for m in lines), lines


async def test_a_timeout_gives_aws_error_and_replaces_the_worker(node: EmulatorHandle) -> None:
    first = await invoke(node, "node-slow", {"ms": 0})
    assert "FunctionError" not in first, first["body"]
    result = await invoke(node, "node-slow", {"ms": 30_000})
    assert result["FunctionError"] == "Unhandled"
    assert result["body"]["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in result["body"]["errorMessage"]
    after = await invoke(node, "node-slow", {"ms": 0})
    assert after["body"]["slept"] == 0 and after["body"]["pid"] != first["body"]["pid"]


async def test_editing_the_handler_replaces_the_warm_workers(
    node: EmulatorHandle, project: Path
) -> None:
    first = await invoke(node, "node-mjs", {})
    assert first["body"]["version"] == 1
    pool = node.emulator.functions.pools["node-mjs"]
    reloaded = asyncio.ensure_future(pool.reloaded.wait())
    source = project.parent / "mjs" / "handler.mjs"
    source.write_text(source.read_text().replace("version: 1", "version: 2"))
    async with asyncio.timeout(10):
        await reloaded
    second = await invoke(node, "node-mjs", {})
    assert second["body"]["version"] == 2
    assert second["body"]["pid"] != first["body"]["pid"]


async def test_without_the_runtime_client_a_node_function_fails_saying_what_to_install(
    project: Path, tmp_path: Path, iot_emulator_factory: EmulatorFactory
) -> None:
    empty = tmp_path / "node_modules"
    empty.mkdir()
    em = await iot_emulator_factory(rules=[str(project)], backend="moto", node_modules=empty)
    result = await invoke(em, "node-callback", {})
    assert result["FunctionError"] == "Unhandled"
    assert result["body"]["errorType"] == "Runtime.Unavailable"
    message = result["body"]["errorMessage"]
    assert message.startswith("function node-callback (runtime nodejs20.x): ")
    assert "npm aws-lambda-ric" in message and "make install" in message


async def test_the_original_chats_function_runs_with_its_parameter_on_the_installed_node(
    iot_emulator_factory: EmulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """danilop/serverless-chat's template (its shapes: tests/fixtures/serverless-chat): a
    nodejs6.10 callback handler from ../fn, its endpoint from --parameter-overrides."""
    template = REPO_ROOT / "tests" / "fixtures" / "serverless-chat" / "cloudformation"
    with caplog.at_level(logging.WARNING):
        em = await iot_emulator_factory(
            rules=[str(template / "template.yaml")],
            backend="moto",
            parameter_overrides=["AwsIoTEndpoint=127.0.0.1:8883"],
        )
    assert "runtime 'nodejs6.10' is retired on AWS" in caplog.text  # the loader's warning
    assert "function ChatFunction: runtime nodejs6.10 is retired on AWS; it runs on the " in (
        caplog.text
    )
    result = await invoke(em, "ChatFunction", {"clientId": "c1", "connected": True})
    assert "FunctionError" not in result, result["body"]
    assert result["body"] == {"endpoint": "127.0.0.1:8883", "function": "ChatFunction"}


async def test_a_handler_module_that_is_not_there_is_an_import_error(
    node: EmulatorHandle,
) -> None:
    """What the original chat's function met under the Python client, now as AWS's Node.js
    runtime reports it: the init error, through Invoke."""
    result = await invoke(node, "node-missing", {})
    assert result["FunctionError"] == "Unhandled"
    assert result["body"]["errorType"] == "Runtime.ImportModuleError"
    assert "Cannot find module 'nowhere'" in result["body"]["errorMessage"]
