"""The rules engine on its own: the real ``RulesEngine`` with a plain list as the broker
(``ActionTargets.publish``) and small fakes for the AWS clients (external services).

No sockets. Each test feeds messages to ``handle`` as the broker would and waits for the
engine on events (``wait_idle``, the next loop turn), never on time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from emulator.actions.base import ActionTargets
from emulator.messages import InboundMessage
from emulator.project.loader import load_project
from emulator.rules.context import MessageContexts
from emulator.rules.engine import RulesEngine
from emulator.sql.context import MessageContext

RULES = """
rules:
  - ruleName: Chat
    sql: >-
      SELECT *, clientid() AS clientId FROM 'chat/out' WHERE NOT isUndefined(message)
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "chat/pub${room}", qos: 1}
    errorAction:
      republish: {topic: "errors/chat"}
  - ruleName: Other
    sql: SELECT VALUE n FROM 'other/+'
    actions:
      - republish: {topic: "other/out/${topic(2)}"}
  - ruleName: Loop
    sql: SELECT * FROM 'loop/a'
    actions:
      - republish: {topic: "loop/a"}
    errorAction:
      republish: {topic: "errors/loop"}
  - ruleName: Store
    sql: SELECT * FROM 'store/in'
    actions:
      - dynamoDBv2: {putItem: {tableName: "chat"}}
    errorAction:
      republish: {topic: "errors/store"}
  - ruleName: Render
    sql: SELECT * FROM 'render/in'
    awsIotSqlVersion: "2016-03-23"  # encode() is 2016-03-23 and later
    actions:
      - republish: {topic: "render/${encode(topic(), scheme)}"}
      - republish: {topic: "render/copy"}
    errorAction:
      republish: {topic: "errors/render"}
  - ruleName: Broken
    sql: SELECT get_secret(text, pattern, 'arn:aws:iam::123456789012:role/r') AS m FROM 'broken/in'
    actions:
      - republish: {topic: "broken/out"}
  - ruleName: Stream
    sql: SELECT * FROM 'stream/in'
    actions:
      - kinesis: {streamName: "chat-stream", partitionKey: "${clientid()}"}
    errorAction:
      republish: {topic: "errors/stream"}
  - ruleName: Drop
    sql: SELECT * FROM 'drop/in'
    actions:
      - republish: {topic: "drop/${x}"}
    errorAction:
      kinesis: {streamName: "chat-stream", partitionKey: "errors"}
  - ruleName: Lookup
    sql: >-
      SELECT get_dynamodb('chat', 'room', room, 'timestamp', 1,
        'arn:aws:iam::123456789012:role/r').message AS stored FROM 'lookup/in'
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "lookup/out"}

tables:
  - tableName: chat
    keySchema: {hashKey: room, hashType: S, rangeKey: timestamp, rangeType: N}
streams:
  - streamName: chat-stream
"""


class FakeDynamoDB:
    """The few calls of aiobotocore's DynamoDB client the engine makes; ``fail`` raises."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.items: list[dict[str, Any]] = []
        self.stored = {"message": {"S": "kept"}}

    async def put_item(self, **kwargs: Any) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.items.append(kwargs)
        return {}

    async def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return {"Item": self.stored}


class FakeKinesis:
    """``put_record`` that waits until released, to hold the engine's only worker."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def put_record(self, **kwargs: Any) -> dict[str, Any]:
        self.started.set()
        await self.release.wait()
        self.records.append(kwargs)
        return {}


def message(
    topic: str, payload: Any, client_id: str | None = "c1", hops: int = 0
) -> InboundMessage:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return InboundMessage(topic, body, 0, False, client_id, None, 1_700_000_000_000, hops)


async def next_turn() -> None:
    """Until the callbacks scheduled so far (the engine's flush) have run."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    loop.call_soon(done.set_result, None)
    async with asyncio.timeout(1):
        await done


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    return tmp_path


@pytest.fixture
async def make_engine(project_path: Path) -> AsyncIterator[Any]:
    engines: list[RulesEngine] = []

    async def make(targets: ActionTargets, **options: Any) -> RulesEngine:
        options.setdefault("contexts", MessageContexts(newuuid=lambda: "trace-1"))
        engine = RulesEngine(targets, **options)
        await engine.start()
        project = load_project([project_path])
        assert project.errors == ()
        engine.load(project)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


async def test_a_message_reaches_only_the_rules_whose_filter_matches(make_engine: Any) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append))
    engine.handle(message("chat/out", {"room": "/lobby", "message": "hi"}))
    engine.handle(message("other/x", {"n": 5}))
    engine.handle(message("nobody/listens", {"n": 6}))
    assert out == []  # republished messages are new messages: next loop turn
    await next_turn()
    assert [(m.topic, m.payload, m.qos, m.hops, m.client_id) for m in out] == [
        ("chat/pub/lobby", b'{"room":"/lobby","message":"hi","clientId":"c1"}', 1, 1, None),
        ("other/out/x", b"5", 0, 1, None),
    ]
    assert out[0].timestamp_ms == 1_700_000_000_000  # the original message's time
    assert engine.counters["Chat"].matched == 1 and engine.counters["Other"].matched == 1
    assert engine.counters["Loop"].matched == 0


async def test_where_decides_whether_a_rule_acts(make_engine: Any) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append))
    engine.handle(message("chat/out", {"room": "/lobby"}))  # no message: WHERE is false
    engine.handle(message("chat/out", {"room": "/lobby", "message": "2nd"}))
    await next_turn()
    assert [json.loads(m.payload)["message"] for m in out] == ["2nd"]
    assert engine.counters["Chat"].matched == 1
    assert engine.counters["Chat"].actions_ok == 1


async def test_a_rule_loop_is_cut_at_max_hops_into_the_error_action(make_engine: Any) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append), max_hops=3)
    engine.handle(message("loop/a", {"x": 1}))
    seen = []
    while True:  # the broker's part: each republished message comes back to the engine
        await next_turn()
        (republished,) = out
        out.clear()
        seen.append((republished.topic, republished.hops))
        if republished.topic == "errors/loop":
            break
        engine.handle(republished)
    assert seen == [("loop/a", 1), ("loop/a", 2), ("loop/a", 3), ("errors/loop", 4)]
    assert engine.loops_cut == 1
    error = json.loads(republished.payload)
    assert error["failures"] == [
        {
            "failedAction": "RepublishAction",
            "failedResource": "republish",
            "errorMessage": "rule loop: 4 republish hops, over the limit of 3",
        }
    ]
    assert error["clientId"] == ""  # the looping message was the engine's own
    counters = engine.counters["Loop"]
    assert (counters.matched, counters.actions_ok, counters.actions_failed) == (4, 3, 1)


async def test_a_failed_action_sends_aws_error_message_to_the_error_action(
    make_engine: Any,
) -> None:
    out: list[InboundMessage] = []
    dynamodb = FakeDynamoDB(fail=ValueError("table is gone"))
    engine = await make_engine(ActionTargets(publish=out.append, dynamodb=dynamodb))
    payload = b'{"room": "/lobby", "message": "hi"}'
    engine.handle(message("store/in", payload, client_id="writer"))
    await engine.wait_idle()
    await next_turn()
    (error_message,) = out
    assert error_message.topic == "errors/store"
    assert json.loads(error_message.payload) == {  # rule-error-handling.md
        "ruleName": "Store",
        "topic": "store/in",
        "cloudwatchTraceId": "trace-1",
        "clientId": "writer",
        "base64OriginalPayload": base64.b64encode(payload).decode(),
        "failures": [
            {
                "failedAction": "DynamoDBv2Action",
                "failedResource": "chat",
                "errorMessage": "ValueError: table is gone",
            }
        ],
    }
    counters = engine.counters["Store"]
    assert (counters.matched, counters.actions_ok, counters.actions_failed) == (1, 0, 1)


async def test_a_successful_action_sends_no_error(make_engine: Any) -> None:
    out: list[InboundMessage] = []
    dynamodb = FakeDynamoDB()
    engine = await make_engine(ActionTargets(publish=out.append, dynamodb=dynamodb))
    engine.handle(message("store/in", {"room": "/lobby", "n": 2, "ok": True}))
    await engine.wait_idle()
    await next_turn()
    assert out == []
    assert dynamodb.items == [
        {
            "TableName": "chat",
            "Item": {"room": {"S": "/lobby"}, "n": {"N": "2"}, "ok": {"BOOL": True}},
        }
    ]
    assert engine.counters["Store"].actions_ok == 1


async def test_a_template_that_fails_to_render_fails_only_its_action(make_engine: Any) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append))
    engine.handle(message("render/in", {"scheme": "hex"}))
    await next_turn()
    by_topic = {m.topic: m for m in out}
    assert set(by_topic) == {"render/copy", "errors/render"}
    (failure,) = json.loads(by_topic["errors/render"].payload)["failures"]
    assert failure["failedAction"] == "RepublishAction"
    assert "unsupported encoding" in failure["errorMessage"]
    counters = engine.counters["Render"]
    assert (counters.matched, counters.actions_ok, counters.actions_failed) == (1, 1, 1)


async def test_a_statement_that_fails_counts_an_error_and_acts_on_nothing(
    make_engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append))
    with caplog.at_level(logging.WARNING, logger="emulator.rules.engine"):
        engine.handle(message("broken/in", {"text": "a", "pattern": "("}))
    await next_turn()
    assert out == []
    counters = engine.counters["Broken"]
    assert (counters.errors, counters.matched) == (1, 0)
    assert any("rule Broken failed" in r.getMessage() for r in caplog.records)


async def test_a_full_action_queue_fails_the_action_into_the_error_action(
    make_engine: Any,
) -> None:
    out: list[InboundMessage] = []
    kinesis = FakeKinesis()
    engine = await make_engine(
        ActionTargets(publish=out.append, kinesis=kinesis), queue_size=1, workers=1
    )
    engine.handle(message("stream/in", {"n": 1}))
    async with asyncio.timeout(1):
        await kinesis.started.wait()  # the only worker holds the first record
    engine.handle(message("stream/in", {"n": 2}))  # waits in the queue
    engine.handle(message("stream/in", {"n": 3}))  # finds the queue full
    await next_turn()
    (error_message,) = out
    assert error_message.topic == "errors/stream"
    (failure,) = json.loads(error_message.payload)["failures"]
    assert failure == {
        "failedAction": "KinesisAction",
        "failedResource": "kinesis",
        "errorMessage": "the rules engine's action queue is full",
    }
    kinesis.release.set()
    await engine.wait_idle()
    assert [r["PartitionKey"] for r in kinesis.records] == ["c1", "c1"]
    assert [json.loads(r["Data"])["n"] for r in kinesis.records] == [1, 2]
    counters = engine.counters["Stream"]
    assert (counters.matched, counters.actions_ok, counters.actions_failed) == (3, 2, 1)


async def test_an_error_action_that_cannot_be_queued_is_logged(
    make_engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    out: list[InboundMessage] = []
    kinesis = FakeKinesis()
    engine = await make_engine(
        ActionTargets(publish=out.append, kinesis=kinesis), queue_size=1, workers=1
    )
    engine.handle(message("stream/in", {"n": 1}))
    async with asyncio.timeout(1):
        await kinesis.started.wait()
    engine.handle(message("stream/in", {"n": 2}))  # the queue is full from here
    with caplog.at_level(logging.WARNING, logger="emulator.rules.engine"):
        engine.handle(message("drop/in", {"x": "+"}))  # a wildcard: the republish fails
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == [
        "rule Drop: error action KinesisAction dropped: the action queue is full (1 failed actions)"
    ]
    kinesis.release.set()
    await engine.wait_idle()
    assert len(kinesis.records) == 2  # the stream got the rule's records, not the error


async def test_a_failing_error_action_is_logged_and_not_chained(make_engine: Any) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append), max_hops=1)
    # Two hops already: the republish (3) is over the limit, and so is the error action,
    # which may go one hop further than the rule's actions (3 > 1 + 1).
    engine.handle(message("loop/a", {"x": 1}, hops=2))
    await next_turn()
    assert out == []
    counters = engine.counters["Loop"]
    assert (counters.actions_ok, counters.actions_failed) == (0, 2)
    assert engine.loops_cut == 2


async def test_republished_messages_of_one_turn_go_out_together_in_order(
    make_engine: Any,
) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append))
    for room in ("/a", "/b", "/a", "/c"):
        engine.handle(message("chat/out", {"room": room, "message": room}))
    assert out == []
    await next_turn()
    assert [m.topic for m in out] == ["chat/pub/a", "chat/pub/b", "chat/pub/a", "chat/pub/c"]


async def test_without_a_broker_a_republish_fails(make_engine: Any) -> None:
    engine = await make_engine(ActionTargets())
    engine.handle(message("other/x", {"n": 1}))
    counters = engine.counters["Other"]
    assert (counters.matched, counters.actions_ok, counters.actions_failed) == (1, 0, 1)


async def test_get_dynamodb_runs_on_the_engines_thread_pool(make_engine: Any) -> None:
    out: list[InboundMessage] = []
    dynamodb = FakeDynamoDB()
    engine = await make_engine(ActionTargets(publish=out.append, dynamodb=dynamodb))
    engine.handle(message("lookup/in", {"room": "/lobby"}))
    await engine.wait_idle()
    await next_turn()
    assert [(m.topic, json.loads(m.payload)) for m in out] == [("lookup/out", {"stored": "kept"})]


async def test_hot_reload_keeps_counters_of_rules_that_stay(
    make_engine: Any, project_path: Path
) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append))
    engine.handle(message("other/x", {"n": 1}))
    (project_path / "rules.yaml").write_text(RULES.replace("ruleName: Loop", "ruleName: Loop2"))
    engine.load(load_project([project_path]))
    assert engine.counters["Other"].matched == 1
    assert "Loop" not in engine.counters and engine.counters["Loop2"].matched == 0
    assert engine.health()["loaded"] == len(engine.rules) == 9


def test_the_context_of_a_message_sets_every_field() -> None:
    """``of_message`` sets the fields one by one (the hot path): none may be forgotten."""
    contexts = MessageContexts(account_id="1", newuuid=lambda: "u", random=lambda: 0.5)
    msg = InboundMessage(
        "a/b", b'{"x": 1}', 1, False, "c1", "p1", 42, 0, "trace", source_ip="192.0.2.1"
    )
    made = contexts.of_message(msg, {"x": 1})
    assert {f.name for f in fields(MessageContext)} == set(MessageContext.__slots__)
    assert made == MessageContext(
        topic="a/b",
        payload=b'{"x": 1}',
        client_id="c1",
        principal="p1",
        source_ip="192.0.2.1",
        timestamp_ms=42,
        trace_id="trace",
        newuuid=contexts.newuuid,
        random=contexts.random,
        external=None,
        account_id="1",
        _doc={"x": 1},
        _parsed=True,
    )
    assert made.document == {"x": 1}


async def test_a_republished_message_keeps_the_client_it_comes_from(make_engine: Any) -> None:
    out: list[InboundMessage] = []
    engine = await make_engine(ActionTargets(publish=out.append))
    engine.handle(message("other/a", {"n": 1}, client_id="web-1"))
    await next_turn()
    engine.handle(out[0])  # other/out/a: republished again by no rule, origin unchanged
    (republished,) = out
    assert (republished.topic, republished.client_id) == ("other/out/a", None)
    assert republished.origin == "web-1"


async def test_actions_of_republished_messages_queue_under_their_origin(
    make_engine: Any,
) -> None:
    """One client's republished messages fill its own share of the action queue, not a
    share all clients' republished messages have in common (the rule's)."""
    out: list[InboundMessage] = []
    kinesis = FakeKinesis()
    engine = await make_engine(
        ActionTargets(publish=out.append, kinesis=kinesis), per_client=1, workers=1
    )

    def republished(n: int, origin: str) -> InboundMessage:
        msg = message("stream/in", {"n": n}, client_id=None, hops=1)
        msg.origin = origin
        return msg

    engine.handle(republished(1, "flooder"))
    async with asyncio.timeout(1):
        await kinesis.started.wait()  # the only worker holds the first record
    engine.handle(republished(2, "flooder"))  # the flooder's share: one waiting
    engine.handle(republished(3, "flooder"))  # over its share: refused
    engine.handle(republished(4, "bystander"))  # a share of its own: admitted
    await next_turn()
    (error_message,) = out
    assert (
        json.loads(base64.b64decode(json.loads(error_message.payload)["base64OriginalPayload"]))[
            "n"
        ]
        == 3
    )
    kinesis.release.set()
    await engine.wait_idle()
    assert [json.loads(r["Data"])["n"] for r in kinesis.records] == [1, 2, 4]
