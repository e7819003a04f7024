"""The chat backend end to end, over MQTT, against the moto and the local backends.

Real parts throughout: the broker, the rules, the handler in lambdas/chat under
awslambdaric, DynamoDB and Kinesis behind them (moto's server, or DynamoDB Local and
kinesis-mock as child processes).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import pytest

from emulator.app import Emulator
from emulator.config import REPO_ROOT
from emulator.testing import TestClient
from tests.integration.conftest import EmulatorStarter

BACKENDS = [b for b in os.environ.get("EMULATOR_TEST_BACKENDS", "moto,local").split(",") if b]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def chat(backend: str, start_emulator: EmulatorStarter) -> Emulator:
    return await start_emulator(rules=[str(REPO_ROOT / "rules")], backend=backend)


async def browser(em: Emulator) -> TestClient:
    """A client that behaves like the page: listens on chat/in/<id> and its room."""
    assert em.http_port is not None
    client = TestClient(
        "127.0.0.1", em.http_port, f"page-{uuid.uuid4().hex[:8]}", transport="websockets"
    )
    await client.connect()
    await client.subscribe(f"chat/in/{client.client_id}", 1)
    await client.subscribe("chat/pub/lobby", 1)
    return client


async def reply_of_type(client: TestClient, kind: str) -> dict[str, Any]:
    while True:
        msg = await client.message_on(f"chat/in/{client.client_id}", timeout=30)
        body = msg.json()
        if body.get("type") == kind:
            return dict(body)


async def test_announce_gets_a_welcome_on_chat_in(chat: Emulator) -> None:
    page = await browser(chat)
    await page.publish(
        "chat/out", json.dumps({"connected": True, "path": "/lobby", "name": "ann"}), qos=1
    )
    welcome = await reply_of_type(page, "welcome")
    assert welcome["room"] == "lobby" and "ann" in welcome["message"]
    presence = await reply_of_type(page, "presence")
    assert {"clientId": page.client_id, "name": "ann"} in presence["online"]
    await page.close()


async def test_message_is_republished_stored_with_ttl_and_in_backlog(chat: Emulator) -> None:
    page = await browser(chat)
    await page.publish(
        "chat/out", json.dumps({"message": "hello", "room": "/lobby", "name": "bo"}), qos=1
    )
    pub = (await page.message_on("chat/pub/lobby")).json()
    assert pub["message"] == "hello" and pub["clientId"] == page.client_id
    assert isinstance(pub["timestamp"], int)
    # Stored by the dynamoDBv2 rule: wait for the item through the backend's own API.
    ddb = chat.backends.dynamodb
    item: dict[str, Any] | None = None
    async with asyncio.timeout(20):
        while item is None:
            got = await ddb.get_item(
                TableName="chat",
                Key={"room": {"S": "lobby"}, "timestamp": {"N": str(pub["timestamp"])}},
            )
            item = got.get("Item")
            if item is None:
                await chat.rules.wait_idle()
    assert int(item["ttl"]["N"]) == pub["timestamp"] // 1000 + 86400
    assert item["message"]["S"] == "hello"
    # The backlog request goes through chat/stream -> Kinesis -> the function.
    await page.publish("chat/stream", json.dumps({"sendroom": "/lobby"}), qos=1)
    backlog = await reply_of_type(page, "backlog")
    assert any(m["message"] == "hello" for m in backlog["messages"])
    await page.close()


async def test_presence_list_updates_when_a_client_leaves(chat: Emulator) -> None:
    stay = await browser(chat)
    await stay.publish(
        "chat/out", json.dumps({"connected": True, "path": "/lobby", "name": "stay"}), qos=1
    )
    await reply_of_type(stay, "welcome")
    leave = await browser(chat)
    await leave.publish(
        "chat/out", json.dumps({"connected": True, "path": "/lobby", "name": "leave"}), qos=1
    )
    while True:
        names = {m["name"] for m in (await reply_of_type(stay, "presence"))["online"]}
        if "leave" in names:
            break
    await leave.kill()  # the lifecycle event, not a message, tells the function
    while True:
        names = {m["name"] for m in (await reply_of_type(stay, "presence"))["online"]}
        if "leave" not in names:
            break
    assert "stay" in names
    await stay.close()


async def test_an_announcement_older_than_the_stored_one_is_ignored(chat: Emulator) -> None:
    """Concurrent asynchronous invocations may handle a page's announcements out of order
    (its first one, under the default name, and the one after a rename): the newest wins."""
    page = await browser(chat)

    async def announce(name: str, seq: int) -> dict[str, Any]:
        event = {"connected": True, "path": "/lobby", "name": name, "seq": seq}
        event["clientId"] = page.client_id
        result = await chat.functions.invoke("chat", json.dumps(event).encode())
        assert result.function_error is None, result.payload
        return dict(json.loads(result.payload))

    assert await announce("renamed", 2) == {"room": "lobby"}
    presence = await reply_of_type(page, "presence")
    assert {"clientId": page.client_id, "name": "renamed"} in presence["online"]
    assert await announce("guest", 1) == {"room": "lobby", "stale": True}
    assert await announce("again", 3) == {"room": "lobby"}
    while True:  # lists may arrive in any order; the page keeps the one with the latest asOf
        later = await reply_of_type(page, "presence")
        if later["asOf"] > presence["asOf"]:
            break
    assert {"clientId": page.client_id, "name": "again"} in later["online"]
    await page.close()
