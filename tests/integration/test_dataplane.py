"""The IoT data plane over HTTP with boto3's ``iot-data`` client (and the AWS CLI) against a
running emulator: publish reaching MQTT subscribers, retained messages, paging, and each
error with the code and HTTP status AWS answers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulator.limits import MAX_PAYLOAD
from emulator.pytest_plugin import EmulatorHandle

AWS_CLI = Path(sys.executable).with_name("aws")
# No project: no rules, no IoT policies (clients are not restricted), no backends to start.
pytestmark = pytest.mark.iot_emulator(rules=[], backend="auto")


async def call(em: EmulatorHandle, operation: str, **params: Any) -> Any:
    client = em.boto3_client("iot-data")
    return await asyncio.to_thread(getattr(client, operation), **params)


async def refused(em: EmulatorHandle, operation: str, **params: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        await call(em, operation, **params)
    response = info.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


async def test_publish_reaches_subscribers_with_its_qos(iot_emulator: EmulatorHandle) -> None:
    client = await iot_emulator.mqtt_client()
    await client.subscribe("dp/#", 1)
    await call(iot_emulator, "publish", topic="dp/one", qos=1, payload=b'{"n": 1}')
    got = await client.next_message()
    assert (got.topic, got.payload, got.qos, got.retain) == ("dp/one", b'{"n": 1}', 1, False)
    await call(iot_emulator, "publish", topic="dp/zero", payload=b"")
    got = await client.next_message()
    assert (got.topic, got.payload, got.qos) == ("dp/zero", b"", 0)


async def test_retained_publish_is_kept_and_sent_to_later_subscribers(
    iot_emulator: EmulatorHandle,
) -> None:
    await call(iot_emulator, "publish", topic="dp/kept", qos=1, retain=True, payload=b"\x00\xff")
    got = await call(iot_emulator, "get_retained_message", topic="dp/kept")
    assert (got["topic"], got["payload"], got["qos"]) == ("dp/kept", b"\x00\xff", 1)
    assert got["lastModifiedTime"] > 1_600_000_000_000
    late = await iot_emulator.mqtt_client()
    await late.subscribe("dp/kept", 1)
    message = await late.next_message()
    assert (message.payload, message.retain) == (b"\x00\xff", True)
    # AWS: an empty retained publish deletes the retained message.
    await call(iot_emulator, "publish", topic="dp/kept", retain=True, payload=b"")
    code, status, _ = await refused(iot_emulator, "get_retained_message", topic="dp/kept")
    assert (code, status) == ("ResourceNotFoundException", 404)


async def test_topics_with_escapes_arrive_as_published(iot_emulator: EmulatorHandle) -> None:
    topic = "dp/100%41 percent/é"  # decoded once: not "dp/100A percent/é"
    client = await iot_emulator.mqtt_client()
    await client.subscribe(topic, 1)
    await call(iot_emulator, "publish", topic=topic, qos=1, retain=True, payload=b"x")
    assert (await client.next_message()).topic == topic
    got = await call(iot_emulator, "get_retained_message", topic=topic)
    assert got["topic"] == topic


async def test_list_retained_messages_pages(iot_emulator: EmulatorHandle) -> None:
    topics = [f"page/{n:02}" for n in range(7)]
    for topic in reversed(topics):
        await call(iot_emulator, "publish", topic=topic, retain=True, payload=topic.encode())
    first = await call(iot_emulator, "list_retained_messages", maxResults=3)
    assert [t["topic"] for t in first["retainedTopics"]] == topics[:3]
    assert first["retainedTopics"][0]["payloadSize"] == len(topics[0])
    second = await call(
        iot_emulator, "list_retained_messages", maxResults=3, nextToken=first["nextToken"]
    )
    assert [t["topic"] for t in second["retainedTopics"]] == topics[3:6]
    paginator = iot_emulator.boto3_client("iot-data").get_paginator("list_retained_messages")
    pages = await asyncio.to_thread(
        lambda: list(paginator.paginate(PaginationConfig={"PageSize": 2}))
    )
    assert [len(p["retainedTopics"]) for p in pages] == [2, 2, 2, 1]
    assert "nextToken" not in pages[-1]
    assert [t["topic"] for p in pages for t in p["retainedTopics"]] == topics


@pytest.mark.parametrize(
    ("params", "code", "status"),
    [
        ({"topic": "dp/+/wild"}, "InvalidRequestException", 400),
        ({"topic": "a/b/c/d/e/f/g/h/i"}, "InvalidRequestException", 400),
        ({"topic": "$aws/events/presence/connected/me"}, "ForbiddenException", 403),
        ({"topic": "$SYS/broker/uptime"}, "ForbiddenException", 403),  # as over MQTT
        ({"topic": "dp/a", "qos": 2}, "InvalidRequestException", 400),
        (
            {"topic": "dp/a", "payload": b"x" * (MAX_PAYLOAD + 1)},
            "RequestEntityTooLargeException",
            413,
        ),
        (  # over the HTTP server's own body limit too
            {"topic": "dp/a", "payload": b"x" * (300 * 1024)},
            "RequestEntityTooLargeException",
            413,
        ),
    ],
)
async def test_refused_publishes(
    iot_emulator: EmulatorHandle, params: dict[str, Any], code: str, status: int
) -> None:
    client = await iot_emulator.mqtt_client()
    await client.subscribe("#", 1)
    got = await refused(iot_emulator, "publish", **params)
    assert got[:2] == (code, status) and got[2]
    await call(iot_emulator, "publish", topic="dp/after", payload=b"next")
    assert (await client.next_message()).topic == "dp/after"  # nothing went out before it


async def test_publish_to_reserved_topics_clients_may_use(iot_emulator: EmulatorHandle) -> None:
    client = await iot_emulator.mqtt_client()
    await client.subscribe("$aws/things/lamp/shadow/update", 1)
    await call(iot_emulator, "publish", topic="$aws/things/lamp/shadow/update", payload=b"{}")
    assert (await client.next_message()).topic == "$aws/things/lamp/shadow/update"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"maxResults": 500}, "maxResults must be between 1 and 200, not 500"),
        ({"nextToken": "not a token"}, "invalid nextToken 'not a token'"),
    ],
)
async def test_bad_paging_parameters(
    iot_emulator: EmulatorHandle, params: dict[str, Any], message: str
) -> None:
    got = await refused(iot_emulator, "list_retained_messages", **params)
    assert got == ("InvalidRequestException", 400, message)


async def test_no_retained_message(iot_emulator: EmulatorHandle) -> None:
    got = await refused(iot_emulator, "get_retained_message", topic="dp/none")
    assert got == ("ResourceNotFoundException", 404, "no retained message on dp/none")


async def aws_cli(em: EmulatorHandle, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": em.emulator.config.region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    command = [str(AWS_CLI), "iot-data", *args, "--endpoint-url", em.http_url]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=60
    )


async def test_the_aws_cli(iot_emulator: EmulatorHandle, tmp_path: Path) -> None:
    client = await iot_emulator.mqtt_client()
    await client.subscribe("cli/#", 1)
    payload = tmp_path / "payload.json"
    payload.write_text('{"from": "cli"}')
    done = await aws_cli(
        iot_emulator,
        "publish",
        "--topic",
        "cli/hello",
        "--qos",
        "1",
        "--retain",
        "--payload",
        f"fileb://{payload}",
    )
    assert done.returncode == 0, done.stderr
    got = await client.next_message()
    assert (got.topic, got.json(), got.qos) == ("cli/hello", {"from": "cli"}, 1)
    listed = await aws_cli(iot_emulator, "list-retained-messages")
    assert json.loads(listed.stdout)["retainedTopics"][0]["topic"] == "cli/hello"
    bad = await aws_cli(iot_emulator, "publish", "--topic", "$aws/events/x", "--payload", "")
    assert bad.returncode != 0
    assert "ForbiddenException" in bad.stderr
