"""Each action type on its own: the registry's names, ``render`` with templates and
defaults, and ``execute`` against small fakes of the AWS clients (external services)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulator.actions.base import ActionError, ActionTargets, Reference
from emulator.actions.dynamodb import DynamoDBRequest
from emulator.actions.dynamodbv2 import PutItemRequest
from emulator.actions.kinesis import KinesisRequest
from emulator.actions.lambda_ import LambdaRequest
from emulator.actions.registry import ACTION_TYPES, BY_CLOUDFORMATION_NAME, compile_action
from emulator.actions.republish import RepublishRequest
from emulator.messages import InboundMessage
from emulator.project.loader import load_project
from emulator.rules.context import MessageContexts
from emulator.sql.context import Env
from emulator.sql.errors import RuleSyntaxError

VERSION = "2016-03-23"


def env(topic: str = "chat/pub/lobby", payload: Any = None, client_id: str = "c7") -> Env:
    body = json.dumps(payload if payload is not None else {"room": "/lobby", "n": 3}).encode()
    ctx = MessageContexts(newuuid=lambda: "uuid-1").of_payload(
        topic, body, 1_700_000_000_000, client_id=client_id
    )
    return Env(ctx.document, ctx, VERSION, body)


def test_the_registry_names_each_type_as_aws_does() -> None:
    assert {name: (t.cloudformation_name, t.failed_name) for name, t in ACTION_TYPES.items()} == {
        "republish": ("Republish", "RepublishAction"),
        "dynamoDBv2": ("DynamoDBv2", "DynamoDBv2Action"),
        "dynamoDB": ("DynamoDB", "DynamoAction"),
        "kinesis": ("Kinesis", "KinesisAction"),
        "lambda": ("Lambda", "LambdaAction"),
    }
    assert {n: t.type_name for n, t in BY_CLOUDFORMATION_NAME.items()} == {
        "Republish": "republish",
        "DynamoDBv2": "dynamoDBv2",
        "DynamoDB": "dynamoDB",
        "Kinesis": "kinesis",
        "Lambda": "lambda",
    }
    assert [t.type_name for t in ACTION_TYPES.values() if t.immediate] == ["republish"]
    for action_type in ACTION_TYPES.values():
        assert action_type.required_field
        assert set(action_type.template_fields) >= {action_type.required_field}


@pytest.mark.parametrize(
    ("type_name", "params", "expected"),
    [
        (
            "republish",
            {"topic": "chat/pub${room}", "qos": 1},
            RepublishRequest("chat/pub/lobby", 1, False, {"x": 1}),
        ),
        ("republish", {"topic": "fixed"}, RepublishRequest("fixed", 0, False, {"x": 1})),
        (  # '$$' is AWS's escape for a reserved topic (republish-rule-action.md)
            "republish",
            {"topic": "$$aws/things/t/shadow/update"},
            RepublishRequest("$aws/things/t/shadow/update", 0, False, {"x": 1}),
        ),
        (
            "republish",
            {"topic": "$$aws/rules/R/${topic(2)}"},
            RepublishRequest("$aws/rules/R/pub", 0, False, {"x": 1}),
        ),
        (
            "dynamoDBv2",
            {"putItem": {"tableName": "t-${topic(2)}"}},
            PutItemRequest("t-pub", {"x": 1}),
        ),
        (
            "dynamoDB",
            {"tableName": "chat", "hashKeyField": "room", "hashKeyValue": "${room}"},
            DynamoDBRequest(
                "chat",
                "room",
                "/lobby",
                "STRING",
                None,
                None,
                "STRING",
                "payload",
                "INSERT",
                {"x": 1},
            ),
        ),
        (
            "dynamoDB",
            {
                "tableName": "chat",
                "hashKeyField": "room",
                "hashKeyValue": "${room}",
                "hashKeyType": "STRING",
                "rangeKeyField": "n",
                "rangeKeyValue": "${n}",
                "rangeKeyType": "NUMBER",
                "payloadField": "body",
                "operation": "update",
            },
            DynamoDBRequest(
                "chat", "room", "/lobby", "STRING", "n", "3", "NUMBER", "body", "UPDATE", {"x": 1}
            ),
        ),
        (
            "kinesis",
            {"streamName": "s", "partitionKey": "${clientid()}"},
            KinesisRequest("s", "c7", {"x": 1}),
        ),
        ("kinesis", {"streamName": "s"}, KinesisRequest("s", "uuid-1", {"x": 1})),
        (
            "lambda",
            {"functionArn": "arn:aws:lambda:us-east-1:123456789012:function:chat"},
            LambdaRequest("arn:aws:lambda:us-east-1:123456789012:function:chat", "chat", {"x": 1}),
        ),
        ("lambda", {"functionArn": "chat-${n}"}, LambdaRequest("chat-3", "chat-3", {"x": 1})),
    ],
)
def test_render_fills_templates_and_defaults(
    type_name: str, params: dict[str, Any], expected: Any
) -> None:
    action = compile_action(type_name, params, VERSION)
    assert action.render(env(), {"x": 1}) == expected


def test_describe_is_what_the_dry_run_prints() -> None:
    request = compile_action("kinesis", {"streamName": "s"}, VERSION).render(env(), b"raw")
    assert request.describe() == {"streamName": "s", "partitionKey": "uuid-1"}


def test_republish_makes_a_message_one_hop_further() -> None:
    action = compile_action("republish", {"topic": "out/${room}", "retain": True}, VERSION)
    source = InboundMessage("in", b"{}", 1, False, "c7", "p", 42, 2)
    made = action.message(env(), {"a": 1}, source)
    assert (made.topic, made.payload, made.qos, made.retain) == ("out//lobby", b'{"a":1}', 0, True)
    assert (made.client_id, made.principal, made.timestamp_ms, made.hops) == (None, None, 42, 3)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("$$aws/things/t/shadow/update", "$aws/things/t/shadow/update"), ("$$a/${room}", "$a//lobby")],
)
def test_a_republish_to_a_reserved_topic_is_written_with_two_dollars(
    topic: str, expected: str
) -> None:
    action = compile_action("republish", {"topic": topic}, VERSION)
    made = action.message(env(), {}, InboundMessage("in", b"{}", 1, False, "c7", "p", 42, 2))
    assert made.topic == expected


def test_compile_refuses_what_aws_would_not_create() -> None:
    with pytest.raises(ValueError, match="qos must be 0 or 1"):
        compile_action("republish", {"topic": "t", "qos": "high"}, VERSION)
    with pytest.raises(RuleSyntaxError):
        compile_action("republish", {"topic": "t/${"}, VERSION)


def test_references_name_the_resources_to_check() -> None:
    def refs(type_name: str, params: dict[str, Any]) -> tuple[Reference, ...]:
        return ACTION_TYPES[type_name].references(params)

    assert refs("republish", {"topic": "t"}) == ()
    assert refs("dynamoDBv2", {"putItem": {"tableName": "chat"}}) == (Reference("table", "chat"),)
    assert refs("dynamoDB", {"tableName": "chat"}) == (Reference("table", "chat"),)
    assert refs("kinesis", {"streamName": "s"}) == (Reference("stream", "s"),)
    assert refs("lambda", {"functionArn": "arn:aws:lambda:r:1:function:f:live"}) == (
        Reference("function", "f"),
    )


class FakeClient:
    """Records each call of an aiobotocore-like client; ``fail`` raises instead."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def __getattr__(self, operation: str) -> Any:
        async def call(**kwargs: Any) -> dict[str, Any]:
            if self.fail is not None:
                raise self.fail
            self.calls.append((operation, kwargs))
            return {}

        return call


class FakeFunctions:
    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.calls: list[tuple[str, bytes, str]] = []

    async def invoke(self, name: str, payload: bytes, invocation_type: str = "Event") -> Any:
        self.calls.append((name, payload, invocation_type))
        return FakeResult(self.status)


class FakeResult:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.error = "Unhandled" if status_code >= 300 else ""


async def test_dynamodbv2_puts_each_column_as_an_attribute() -> None:
    client = FakeClient()
    action = compile_action("dynamoDBv2", {"putItem": {"tableName": "chat"}}, VERSION)
    request = action.render(env(), {"room": "/a", "n": 1.5, "tags": ["x"], "m": None})
    await action.execute(request, ActionTargets(dynamodb=client))
    assert client.calls == [
        (
            "put_item",
            {
                "TableName": "chat",
                "Item": {
                    "room": {"S": "/a"},
                    "n": {"N": "1.5"},
                    "tags": {"L": [{"S": "x"}]},
                    "m": {"NULL": True},
                },
            },
        )
    ]


@pytest.mark.parametrize(
    ("targets", "output", "message"),
    [
        (ActionTargets(), {"a": 1}, "no DynamoDB backend is running"),
        (ActionTargets(dynamodb=FakeClient()), [1, 2], "needs the SQL output to be a JSON object"),
        (
            ActionTargets(dynamodb=FakeClient(fail=RuntimeError("throttled"))),
            {"a": 1},
            "RuntimeError: throttled",
        ),
    ],
)
async def test_dynamodbv2_failures_name_action_and_table(
    targets: ActionTargets, output: Any, message: str
) -> None:
    action = compile_action("dynamoDBv2", {"putItem": {"tableName": "chat"}}, VERSION)
    with pytest.raises(ActionError) as caught:
        await action.execute(action.render(env(), output), targets)
    assert (caught.value.action, caught.value.resource) == ("DynamoDBv2Action", "chat")
    assert message in caught.value.message


async def test_dynamodb_v1_writes_inserts_updates_and_deletes() -> None:
    client = FakeClient()
    targets = ActionTargets(dynamodb=client)
    base = {"tableName": "chat", "hashKeyField": "room", "hashKeyValue": "${room}"}
    for params, output in [
        ({**base}, {"a": 1}),
        ({**base, "payloadField": "p", "operation": "UPDATE"}, b'{"b": 2}'),
        (
            {**base, "rangeKeyField": "n", "rangeKeyValue": "${n}", "rangeKeyType": "NUMBER"},
            b"\x00",
        ),
        ({**base, "operation": "DELETE"}, None),
    ]:
        action = compile_action("dynamoDB", params, VERSION)
        await action.execute(action.render(env(), output), targets)
    key = {"room": {"S": "/lobby"}}
    assert client.calls == [
        ("put_item", {"TableName": "chat", "Item": {**key, "payload": {"M": {"a": {"N": "1"}}}}}),
        (
            "update_item",
            {
                "TableName": "chat",
                "Key": key,
                "UpdateExpression": "SET #p = :p",
                "ExpressionAttributeNames": {"#p": "p"},
                "ExpressionAttributeValues": {":p": {"M": {"b": {"N": "2"}}}},
            },
        ),
        (
            "put_item",
            {"TableName": "chat", "Item": {**key, "n": {"N": "3"}, "payload": {"B": b"\x00"}}},
        ),
        ("delete_item", {"TableName": "chat", "Key": key}),
    ]


async def test_kinesis_puts_the_output_as_compact_json() -> None:
    client = FakeClient()
    action = compile_action("kinesis", {"streamName": "s", "partitionKey": "${room}"}, VERSION)
    await action.execute(action.render(env(), {"a": [1, 2]}), ActionTargets(kinesis=client))
    assert client.calls == [
        ("put_record", {"StreamName": "s", "Data": b'{"a":[1,2]}', "PartitionKey": "/lobby"})
    ]
    with pytest.raises(ActionError, match="no Kinesis backend is running"):
        await action.execute(action.render(env(), {}), ActionTargets())


async def test_lambda_invokes_the_function_asynchronously() -> None:
    functions = FakeFunctions()
    arn = "arn:aws:lambda:us-east-1:123456789012:function:chat"
    action = compile_action("lambda", {"functionArn": arn}, VERSION)
    await action.execute(action.render(env(), {"a": 1}), ActionTargets(functions=functions))
    assert functions.calls == [("chat", b'{"a":1}', "Event")]
    failing = ActionTargets(functions=FakeFunctions(status=500))
    with pytest.raises(ActionError) as caught:
        await action.execute(action.render(env(), {"a": 1}), failing)
    assert (caught.value.action, caught.value.resource) == ("LambdaAction", "chat")
    assert caught.value.message == "Lambda invoke failed (500): 'Unhandled'"


def test_a_field_aws_would_refuse_is_a_load_error_at_its_action(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n"
        "  - ruleName: R\n"
        "    sql: SELECT * FROM 'a'\n"
        "    actions:\n"
        "      - republish: {topic: t, qos: high}\n"
    )
    project = load_project([tmp_path])
    assert [str(d) for d in project.errors] == [
        f"{tmp_path / 'rules.yaml'}:5:20: rule 'R': republish: qos must be 0 or 1, not 'high'"
    ]
    assert project.rules == ()
