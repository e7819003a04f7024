"""The chat backend end to end, over MQTT, against the moto and the local backends, in
both of its languages.

Real parts throughout: the broker, the rules, the handler in lambdas/chat under
awslambdaric or the one in lambdas/chat-node under AWS's Node.js runtime interface client
(the SDK for JavaScript v3), DynamoDB and Kinesis behind them (moto's server, or DynamoDB
Local and kinesis-mock as child processes). Every test runs against each language: the
Python function from rules/, the Node.js one from template.yaml with
``--parameter-overrides ChatLanguage=nodejs`` (the two sources declare the same rules:
tests/unit/test_rule_sources.py).
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
from emulator.testing import Received, TestClient
from tests.integration.conftest import EmulatorStarter

BACKENDS = [b for b in os.environ.get("EMULATOR_TEST_BACKENDS", "moto,local").split(",") if b]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=["python", "nodejs"])
def language(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def chat_settings(language: str) -> dict[str, Any]:
    """The settings that run the chat with its function in ``language``."""
    if language == "nodejs":
        return {
            "rules": [str(REPO_ROOT / "template.yaml")],
            "parameter_overrides": ["ChatLanguage=nodejs"],
        }
    return {"rules": [str(REPO_ROOT / "rules")]}


@pytest.fixture
async def chat(backend: str, language: str, start_emulator: EmulatorStarter) -> Emulator:
    em = await start_emulator(**chat_settings(language), backend=backend)
    (function,) = em.project.functions
    assert function.runtime.startswith({"python": "python3.", "nodejs": "nodejs"}[language])
    return em


async def browser(em: Emulator, room: str = "lobby") -> TestClient:
    """A client that behaves like the page: listens on chat/in/<id> and its room."""
    assert em.http_port is not None
    client = TestClient(
        "127.0.0.1", em.http_port, f"page-{uuid.uuid4().hex[:8]}", transport="websockets"
    )
    await client.connect()
    await client.subscribe(f"chat/in/{client.client_id}", 1)
    await client.subscribe(f"chat/pub/{room}", 1)
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
    assert pub["id"].startswith(f"{pub['timestamp']}-")  # the sort key: time, then a UUID
    # Stored by the dynamoDBv2 rule: wait for the item through the backend's own API.
    ddb = chat.backends.dynamodb
    item: dict[str, Any] | None = None
    async with asyncio.timeout(20):
        while item is None:
            got = await ddb.get_item(
                TableName="chat",
                Key={"room": {"S": "lobby"}, "id": {"S": pub["id"]}},
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


# -- any payload, any burst: issue 17 ------------------------------------------------------

MAX_PAYLOAD = 128 * 1024  # AWS IoT's payload limit, which every reply must fit


@pytest.fixture
async def busy_chat(backend: str, language: str, start_emulator: EmulatorStarter) -> Emulator:
    """The chat with the per-connection quotas raised: the bursts below come from one or two
    connections, faster than AWS's 100 PUBLISH a second would let them."""
    return await start_emulator(
        **chat_settings(language),
        backend=backend,
        publish_rate=100_000,
        throughput_kib=1_000_000,
    )


def new_room() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


async def say(page: TestClient, room: str, bodies: list[dict[str, Any]]) -> list[Any]:
    """Publish ``bodies`` on chat/out at once, then wait until the room has had them all
    back on chat/pub/<room>: by then the ChatStore rule has queued their items."""
    for body in bodies:
        payload = json.dumps({"room": f"/{room}", **body}, ensure_ascii=False)  # as the page
        page.publish_nowait("chat/out", payload.encode(), 1)
    return [(await page.message_on(f"chat/pub/{room}", timeout=30)).json() for _ in bodies]


async def stored(em: Emulator, room: str) -> int:
    """The room's items in the messages table, once every queued action has run."""
    await em.rules.wait_idle()
    query: dict[str, Any] = {
        "TableName": "chat",
        "KeyConditionExpression": "room = :room",
        "ExpressionAttributeValues": {":room": {"S": room}},
        "Select": "COUNT",
        "ConsistentRead": True,
    }
    count = 0
    while True:
        page = await em.backends.dynamodb.query(**query)
        count += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return count
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def backlog_of(page: TestClient, room: str, topic: str = "chat/out") -> Received:
    """The raw backlog reply to a join's request (on chat/stream, as the page asks, or
    straight to the function on chat/out, which skips Kinesis's batching window)."""
    await page.publish(topic, json.dumps({"sendroom": f"/{room}"}), qos=1)
    while True:
        reply = await page.message_on(f"chat/in/{page.client_id}", timeout=30)
        if reply.json().get("type") == "backlog":
            return reply


async def test_messages_of_any_json_type_stay_in_the_backlog(busy_chat: Emulator) -> None:
    """DynamoDB's numbers come back as Decimal: once made JSON numbers again, an object, an
    array or a number as the message, or a number as the name, do not break the backlog."""
    room = new_room()
    page = await browser(busy_chat, room)
    sent: list[dict[str, Any]] = [
        {"message": {"text": "x", "n": 1.5, "big": 12345678901234567890}, "name": 42},
        {"message": [1, 2.25, "three", None, True], "name": "ann"},
        {"message": 7, "name": 3.5},
        {"message": "plain", "name": {"nick": "bo"}},
    ]
    live = await say(page, room, sent)
    assert await stored(busy_chat, room) == len(sent)
    backlog = (await backlog_of(page, room, "chat/stream")).json()
    got = [(m["id"], m["message"], m["name"]) for m in backlog["messages"]]
    assert got == sorted((p["id"], p["message"], p["name"]) for p in live)  # the table's order
    as_sent = sorted(json.dumps([b["message"], b["name"]], sort_keys=True) for b in sent)
    assert as_sent == sorted(json.dumps([m, n], sort_keys=True) for _, m, n in got)
    assert all(type(m["timestamp"]) is int for m in backlog["messages"])
    assert {m["room"] for m in backlog["messages"]} == {f"/{room}"}  # as on chat/pub
    await page.close()


async def test_the_backlog_of_long_messages_fits_one_reply_newest_kept(
    busy_chat: Emulator,
) -> None:
    """200 messages of 2,000 characters, CJK among them, are 1.2 MB: the reply carries the
    newest that fit in 128 KB, oldest first, and says how many it left out."""
    room = new_room()
    page = await browser(busy_chat, room)
    texts = [f"{i:03} " + ("漢字かな" if i % 2 else "latin ") * 500 for i in range(200)]
    sent = await say(page, room, [{"message": t[:2000], "name": "ann"} for t in texts])
    assert await stored(busy_chat, room) == 200
    reply = await backlog_of(page, room)
    assert len(reply.payload) <= MAX_PAYLOAD
    backlog = reply.json()
    messages = backlog["messages"]
    # The newest, in the table's order: time, then (within a millisecond) the id's UUID.
    ids = [m["id"] for m in messages]
    assert len(ids) >= 20 and ids == sorted(p["id"] for p in sent)[-len(ids) :]
    assert sent[-1]["id"] in ids  # the last one sent
    assert backlog["omitted"] == min(50, len(sent)) - len(messages)  # of the 50 read
    assert all(len(m["message"]) == 2000 and "truncated" not in m for m in messages)
    await page.close()


async def test_one_message_too_big_for_the_reply_is_cut_not_dropped(busy_chat: Emulator) -> None:
    """A message just under the limit is republished and stored, but the backlog reply adds
    its own fields: the message is cut, marked, and the reply is not empty."""
    room = new_room()
    page = await browser(busy_chat, room)
    await say(page, room, [{"message": "before", "name": "ann"}])
    # What the ChatRepublish rule adds: clientId, a 13-digit timestamp, a 50-character id.
    stamped: dict[str, Any] = {"room": f"/{room}", "message": "", "name": "ann"}
    stamped["clientId"] = page.client_id
    stamped |= {"timestamp": 1_700_000_000_000, "id": "x" * 50}
    room_left = MAX_PAYLOAD - len(json.dumps(stamped, separators=(",", ":")))
    (big,) = await say(page, room, [{"message": "é" * (room_left // 2 - 8), "name": "ann"}])
    assert await stored(busy_chat, room) == 2
    reply = await backlog_of(page, room)
    assert len(reply.payload) <= MAX_PAYLOAD
    (message,) = reply.json()["messages"]
    assert message["id"] == big["id"] and message["truncated"] is True
    assert message["message"].endswith("…") and big["message"].startswith(message["message"][:-1])
    assert reply.json()["omitted"] == 1
    await page.close()


async def test_a_burst_from_two_clients_in_the_same_milliseconds_is_all_stored(
    busy_chat: Emulator,
) -> None:
    """The sort key is the message's id (time, then a UUID), not its millisecond: 600
    messages sent at once by two clients are 600 items."""
    room = new_room()
    first, second = await browser(busy_chat, room), await browser(busy_chat, room)
    for page in (first, second):
        for i in range(300):
            page.publish_nowait("chat/out", json.dumps({"room": f"/{room}", "message": i}), 1)
    live = [(await first.message_on(f"chat/pub/{room}", timeout=30)).json() for _ in range(600)]
    stamps = [m["timestamp"] for m in live]
    assert len(set(stamps)) < len(stamps)  # the burst did share milliseconds
    assert len({m["id"] for m in live}) == 600
    assert await stored(busy_chat, room) == 600
    await first.close()
    await second.close()


async def test_a_deeper_path_is_no_room_for_the_rules_nor_the_function(chat: Emulator) -> None:
    """'/lobby/x' is not stored in lobby (nor anywhere), and the function answers a join or
    a backlog request for it with an error instead of lobby's welcome and backlog."""
    room = new_room()
    page = await browser(chat, room)
    await page.subscribe("chat/pub/#", 1)
    bad = {"room": f"/{room}/x", "message": "deeper"}
    page.publish_nowait("chat/out", json.dumps(bad), 1)
    page.publish_nowait("chat/out", json.dumps({**bad, "room": "/a+b"}), 1)
    page.publish_nowait("chat/out", json.dumps({"room": f"/{room}", "message": "after"}), 1)
    first = await page.next_message(timeout=30)  # the same connection's, in order
    assert (first.topic, first.json()["message"]) == (f"chat/pub/{room}", "after")
    assert await stored(chat, room) == 1
    for event in ({"connected": True, "path": f"/{room}/x"}, {"sendroom": f"/{room}/x"}):
        await page.publish("chat/out", json.dumps(event), qos=1)
        error = await reply_of_type(page, "error")
        assert f'"/{room}/x" is not a room' in error["message"]
    await page.close()
