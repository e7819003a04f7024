"""The rules engine's republish path through a real broker: templates, QoS, failures into
the error action, and rule loops cut at ``max_hops`` (rule-error-handling.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from emulator.app import Emulator
from emulator.testing import TestClient
from tests.integration.conftest import EmulatorStarter

RULES = """
rules:
  - ruleName: Chat
    sql: >-
      SELECT *, clientid() AS clientId, timestamp() AS timestamp
      FROM 'chat/out' WHERE NOT isUndefined(message)
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "chat/pub${room}", qos: 1}
    errorAction:
      republish: {topic: "errors/chat"}
  - ruleName: TwoTargets
    sql: SELECT VALUE n FROM 'two/in'
    actions:
      - republish: {topic: "two/out/${target}"}
      - republish: {topic: "two/copy"}
    errorAction:
      republish: {topic: "errors/two"}
  - ruleName: Loop
    sql: SELECT * FROM 'loop/a'
    actions:
      - republish: {topic: "loop/a"}
    errorAction:
      republish: {topic: "errors/loop"}
  - ruleName: Mixed
    sql: SELECT * FROM 'mixed/in'
    actions:
      - republish: {topic: "mixed/${kind}/out"}
      - kinesis: {streamName: "no-such-stream", partitionKey: "k"}
    errorAction:
      republish: {topic: "errors/mixed"}
"""

MAX_HOPS = 3


@pytest.fixture
async def engine_emulator(tmp_path: Path, start_emulator: EmulatorStarter) -> Emulator:
    (tmp_path / "rules.yaml").write_text(RULES)
    return await start_emulator(rules=[tmp_path], max_hops=MAX_HOPS)


async def _client(em: Emulator, client_id: str, *topics: str) -> TestClient:
    assert em.mqtt_port is not None
    client = TestClient("127.0.0.1", em.mqtt_port, client_id)
    await client.connect()
    for topic in topics:
        await client.subscribe(topic, 1)
    return client


async def test_republish_renders_the_topic_and_adds_the_projection(
    engine_emulator: Emulator,
) -> None:
    sub = await _client(engine_emulator, "reader", "chat/pub/#")
    pub = await _client(engine_emulator, "writer")
    await pub.publish("chat/out", json.dumps({"room": "/lobby", "message": "hi"}), qos=1)
    got = await sub.next_message()
    assert got.topic == "chat/pub/lobby"
    assert got.qos == 1  # the action's QoS, granted by the subscription
    body = got.json()
    assert body["message"] == "hi" and body["room"] == "/lobby"
    assert body["clientId"] == "writer" and isinstance(body["timestamp"], int)
    # WHERE NOT isUndefined(message): a message without one is not republished
    await pub.publish("chat/out", json.dumps({"room": "/lobby"}), qos=1)
    await pub.publish("chat/out", json.dumps({"room": "/lobby", "message": "2nd"}), qos=1)
    assert (await sub.next_message()).json()["message"] == "2nd"
    await pub.close()
    await sub.close()


async def test_a_topic_with_a_wildcard_fails_into_the_error_action(
    engine_emulator: Emulator,
) -> None:
    sub = await _client(engine_emulator, "reader", "chat/pub/#", "errors/#")
    pub = await _client(engine_emulator, "writer")
    payload = json.dumps({"room": "/+", "message": "bad"}).encode()
    await pub.publish("chat/out", payload, qos=1)
    error = (await sub.next_message()).json()
    assert error["ruleName"] == "Chat" and error["topic"] == "chat/out"
    assert error["clientId"] == "writer"
    assert base64.b64decode(error["base64OriginalPayload"]) == payload
    (failure,) = error["failures"]
    assert failure["failedAction"] == "RepublishAction"
    assert "wildcard" in failure["errorMessage"]
    counters = engine_emulator.rules.counters["Chat"]
    assert counters.matched == 1 and counters.actions_failed == 1 and counters.actions_ok == 0
    await pub.close()
    await sub.close()


async def test_one_failing_republish_of_two_still_delivers_the_other(
    engine_emulator: Emulator,
) -> None:
    sub = await _client(engine_emulator, "reader", "two/out/+", "two/copy", "errors/#")
    pub = await _client(engine_emulator, "writer")
    await pub.publish("two/in", json.dumps({"n": 5, "target": "#"}), qos=1)
    first = await sub.next_message()
    second = await sub.next_message()
    by_topic = {first.topic: first, second.topic: second}
    assert set(by_topic) == {"two/copy", "errors/two"}
    assert by_topic["two/copy"].payload == b"5"  # SELECT VALUE: the value itself
    error = by_topic["errors/two"].json()
    assert [f["failedAction"] for f in error["failures"]] == ["RepublishAction"]
    # the same rule with a valid target delivers both, and no error follows
    await pub.publish("two/in", json.dumps({"n": 6, "target": "x"}), qos=1)
    got = {(await sub.next_message()).topic for _ in range(2)}
    assert got == {"two/out/x", "two/copy"}
    assert engine_emulator.rules.counters["TwoTargets"].actions_ok == 3
    await pub.close()
    await sub.close()


async def test_a_rule_loop_is_cut_after_max_hops(engine_emulator: Emulator) -> None:
    sub = await _client(engine_emulator, "reader", "loop/a", "errors/loop")
    pub = await _client(engine_emulator, "writer")
    await pub.publish("loop/a", b'{"x": 1}', qos=1)
    seen: list[str] = []
    while True:
        msg = await sub.next_message()
        seen.append(msg.topic)
        if msg.topic == "errors/loop":
            break
    # the client's message, then one republish per allowed hop, then the cut
    assert seen == ["loop/a"] * (1 + MAX_HOPS) + ["errors/loop"]
    error = json.loads(msg.payload)
    assert "rule loop" in error["failures"][0]["errorMessage"]
    assert error["clientId"] == ""  # the looping message was the broker's, not a client's
    assert engine_emulator.rules.loops_cut == 1
    await pub.close()
    await sub.close()


async def test_republish_next_to_a_failing_action_takes_the_general_path(
    engine_emulator: Emulator,
) -> None:
    sub = await _client(engine_emulator, "reader", "mixed/+/out", "errors/#")
    pub = await _client(engine_emulator, "writer")
    await pub.publish("mixed/in", json.dumps({"kind": "k1"}), qos=1)
    got = {}
    for _ in range(2):
        msg = await sub.next_message()
        got[msg.topic] = msg
    assert set(got) == {"mixed/k1/out", "errors/mixed"}
    error = got["errors/mixed"].json()
    assert [f["failedAction"] for f in error["failures"]] == ["KinesisAction"]
    await pub.close()
    await sub.close()
