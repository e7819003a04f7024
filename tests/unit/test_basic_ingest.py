"""Basic Ingest (iot-basic-ingest.md) and the publisher's IP, in the pure parts: topic
names and limits, the publish check, one connection's protocol, the rules engine's
``ingest``, the message context. Over sockets: tests/integration/test_basic_ingest.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from emulator.actions.base import ActionTargets
from emulator.actions.registry import compile_action
from emulator.broker import codec
from emulator.broker.auth import ClientIdentity, Decision
from emulator.broker.lifecycle import DisconnectReason
from emulator.broker.policy import compile_policies
from emulator.broker.protocol import ConnState
from emulator.broker.state import BrokerState
from emulator.limits import PublishCheck, Refusal, Refused
from emulator.messages import InboundMessage, IngestMessage
from emulator.project.loader import load_project
from emulator.project.model import PolicySpec
from emulator.rules.context import MessageContexts
from emulator.rules.engine import RulesEngine
from emulator.sql.context import Env
from emulator.testing import publish_packet
from emulator.topics import BasicIngest, basic_ingest, validate_subscription, validate_topic_name
from tests.unit.test_connection_protocol import NOW, World, subscribe_packet
from tests.unit.test_engine import next_turn

PREFIX = "$aws/rules/BuildingManager/"


# -- topics and limits ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (
            "$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights",
            BasicIngest("BuildingManager", "Buildings/Building5/Floor2/Room201/Lights"),
        ),
        ("$aws/rules/R", BasicIngest("R", "")),
        ("$aws/rules/R/", BasicIngest("R", "")),
        ("$aws/rules/", BasicIngest("", "")),
        ("$aws/things/t/shadow/update", None),
        ("aws/rules/R/x", None),
        ("$aws/rulesX/R/x", None),
    ],
)
def test_a_basic_ingest_topic_names_its_rule_and_the_topic_the_rule_sees(
    topic: str, expected: BasicIngest | None
) -> None:
    assert basic_ingest(topic) == expected


def test_the_prefix_counts_toward_neither_topic_limit() -> None:
    # AWS quotas: 256 bytes "excluding $aws/rules/name/", 7 slashes "excluding Basic
    # Ingest's first 3".
    assert validate_topic_name(PREFIX + "x" * 256) is None
    assert validate_topic_name(PREFIX + "a/b/c/d/e/f/g/h") is None
    assert validate_topic_name(PREFIX + "x" * 257) == "topic is 257 bytes, over the limit of 256"
    problem = validate_topic_name(PREFIX + "a/b/c/d/e/f/g/h/i")
    assert problem == "topic has 8 slashes, over the limit of 7"
    assert validate_topic_name(PREFIX + "a/+/b") == "topic name contains a wildcard (+ or #)"
    assert validate_topic_name(PREFIX + "a\x00") == "topic contains a NUL character"
    # elsewhere the whole topic counts, as before
    assert validate_topic_name("a/b/c/d/e/f/g/h/i") == "topic has 8 slashes, over the limit of 7"


@pytest.mark.parametrize(
    "topic_filter", ["$aws/rules/#", "$aws/rules/R/x", "$aws/rules/+/x", "$aws/rules"]
)
def test_no_one_subscribes_to_basic_ingest_topics(topic_filter: str) -> None:
    assert validate_subscription(topic_filter) == (
        "Basic Ingest topics ($aws/rules/...) cannot be subscribed to"
    )


def test_other_reserved_filters_and_invalid_filters_are_as_before() -> None:
    assert validate_subscription("$aws/events/#") is None
    assert validate_subscription("$aws/things/t/shadow/#") is None
    assert validate_subscription("a/#/b") == "'#' must be a whole level and the last one"


def test_the_publish_check_answers_a_basic_ingest_topic_with_its_rule() -> None:
    check = PublishCheck()
    assert check.client_publish(PREFIX + "a/b", 10) == BasicIngest("BuildingManager", "a/b")
    assert check.client_publish("$aws/things/t/shadow/update", 10) is None
    too_large = check.client_publish(PREFIX + "a/b", 128 * 1024 + 1)
    assert isinstance(too_large, Refused) and too_large.reason is Refusal.TOO_LARGE
    reserved = check.client_publish("$aws/events/presence/connected/x", 1)
    assert isinstance(reserved, Refused) and reserved.reason is Refusal.RESERVED_TOPIC
    # checked each time, never remembered for the engine's fast path of known topics
    assert not check.is_known(PREFIX + "a/b")
    assert check.is_known("$aws/things/t/shadow/update")


# -- one connection ------------------------------------------------------------------------
def test_a_publish_to_basic_ingest_is_acknowledged_and_goes_to_the_rule_only() -> None:
    world = World()
    protocol, _ = world.connected("dev")
    retained = bytearray(publish_packet(PREFIX + "Floor2/Lights", b"{}", qos=1, packet_id=4))
    retained[0] |= 0x01  # RETAIN
    out = protocol.receive(bytes(retained), NOW + 1)
    assert out == [
        codec.encode_puback(4),
        IngestMessage(
            "Floor2/Lights",
            b"{}",
            1,
            False,  # RETAIN ignored: never retained
            "dev",
            "anonymous",
            NOW + 1,
            source_ip="127.0.0.1",
            rule="BuildingManager",
        ),
    ]
    assert world.state.retained == {}
    assert protocol.state is ConnState.CONNECTED


def test_a_client_message_carries_its_address_for_sourceip() -> None:
    protocol, _ = World().connected("pub")
    out = protocol.receive(publish_packet("a/b", b"hi"), NOW)
    (message,) = out
    assert isinstance(message, InboundMessage) and message.source_ip == "127.0.0.1"


def test_a_last_will_on_a_basic_ingest_topic_goes_to_the_rule() -> None:
    world = World()
    ingesting, _ = world.connected("w1", will=("$aws/rules/Presence/gone", b"bye"))
    plain, _ = world.connected("w2", will=("gone/w2", b"bye"))
    for protocol in (ingesting, plain):
        protocol.connection_lost()
    (ingested,) = [o for o in ingesting.end(NOW) if isinstance(o, IngestMessage)]
    assert (ingested.rule, ingested.topic, ingested.client_id) == ("Presence", "gone", "w1")
    (will,) = [o for o in plain.end(NOW) if type(o) is InboundMessage and o.topic == "gone/w2"]
    assert (will.client_id, will.source_ip) == ("w2", "127.0.0.1")


def test_a_subscribe_to_basic_ingest_topics_is_refused_per_filter() -> None:
    protocol, _ = World().connected("sub")
    out = protocol.receive(subscribe_packet(7, ("$aws/rules/#", 0), ("room/1", 1)), NOW)
    assert out[0] == codec.encode_suback(7, [codec.SUBACK_FAILURE, 1])
    assert protocol.state is ConnState.CONNECTED


class Policy:
    """Allows everything but iot:Publish on ``denied``; records the publish resources."""

    def __init__(self, denied: str) -> None:
        self.denied = denied
        self.published: list[str] = []

    def check(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        if action == "iot:Publish":
            self.published.append(resource)
            return Decision(resource != self.denied, "test")
        return Decision(True, "test")


def test_the_policy_decides_on_the_topic_as_published() -> None:
    world = World()
    policy = Policy(denied="$aws/rules/Secret/x")
    world.state = BrokerState(policy, world.state.quotas)
    protocol, _ = world.connected("dev")
    assert len(protocol.receive(publish_packet(PREFIX + "x", b"1"), NOW)) == 1
    assert protocol.receive(publish_packet("$aws/rules/Secret/x", b"2"), NOW) == []
    assert policy.published == [PREFIX + "x", "$aws/rules/Secret/x"]
    assert protocol.close_reason is DisconnectReason.FORBIDDEN_ACCESS


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        # iot-basic-ingest.md: "publish permissions on $aws/rules/*", or per rule
        ("$aws/rules/*", ["$aws/rules/BuildingManager/a/b", "$aws/rules/Other/x"]),
        ("$aws/rules/BuildingManager/*", ["$aws/rules/BuildingManager/a/b"]),
    ],
)
def test_the_documented_grants_allow_basic_ingest(granted: str, allowed: list[str]) -> None:
    arn = "arn:aws:iot:us-east-1:123456789012"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/*"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{arn}:topic/{granted}"},
        ],
    }
    world = World()
    world.state = BrokerState(compile_policies([PolicySpec("p", document)]), world.state.quotas)
    for n, topic in enumerate(("$aws/rules/BuildingManager/a/b", "$aws/rules/Other/x")):
        protocol, _ = world.connected(f"dev-{n}")
        out = protocol.receive(publish_packet(topic, b"{}"), NOW)
        assert (out != []) is (topic in allowed), topic


# -- the rules engine ----------------------------------------------------------------------
RULES = """
rules:
  - ruleName: BuildingManager
    sql: SELECT topic() AS t, topic(3) AS floor, sourceip() AS ip, n FROM 'Buildings/#'
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "seen/${topic(1)}"}
  - ruleName: Paused
    sql: SELECT * FROM 'off/#'
    ruleDisabled: true
    actions:
      - republish: {topic: "never"}
  - ruleName: NoFrom
    sql: SELECT topic(2) AS second, n
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "nofrom/out"}
  - ruleName: Forward
    sql: SELECT * FROM 'forward/in'
    actions:
      - republish: {topic: "$aws/rules/BuildingManager/Buildings/B1/F9"}
"""


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[RulesEngine, list[InboundMessage]]]:
    (tmp_path / "rules.yaml").write_text(RULES)
    project = load_project([tmp_path])
    assert project.errors == ()
    out: list[InboundMessage] = []
    engine = RulesEngine(ActionTargets(publish=out.append))
    await engine.start()
    engine.load(project)
    yield engine, out
    await engine.stop()


def ingest(
    rule: str, topic: str, payload: Any, source_ip: str | None = "10.0.0.9"
) -> IngestMessage:
    body = json.dumps(payload).encode()
    return IngestMessage(topic, body, 0, False, "dev", None, 1, source_ip=source_ip, rule=rule)


async def test_the_named_rule_runs_whatever_its_from_and_sees_the_topic_without_prefix(
    engine: tuple[RulesEngine, list[InboundMessage]],
) -> None:
    rules, out = engine
    # the doc's example topic, and one that its FROM 'Buildings/#' would not match
    rules.ingest(ingest("BuildingManager", "Buildings/Building5/Floor2/Room201/Lights", {"n": 1}))
    rules.ingest(ingest("BuildingManager", "elsewhere", {"n": 2}))
    await rules.wait_idle()
    await next_turn()
    assert [(m.topic, json.loads(m.payload)) for m in out] == [
        (
            "seen/Buildings",
            {
                "t": "Buildings/Building5/Floor2/Room201/Lights",
                "floor": "Floor2",
                "ip": "10.0.0.9",
                "n": 1,
            },
        ),
        ("seen/elsewhere", {"t": "elsewhere", "ip": "10.0.0.9", "n": 2}),
    ]
    assert out[0].source_ip is None  # republish does not pass the original IP on
    assert rules.counters["BuildingManager"].matched == 2


async def test_a_rule_without_from_runs_only_through_basic_ingest(
    engine: tuple[RulesEngine, list[InboundMessage]],
) -> None:
    rules, out = engine
    rules.handle(InboundMessage("a/b", b'{"n": 0}', 0, False, "dev"))  # no topic reaches it
    rules.ingest(ingest("NoFrom", "a/b", {"n": 1}))
    await next_turn()
    assert [(m.topic, json.loads(m.payload)) for m in out] == [
        ("nofrom/out", {"second": "b", "n": 1})
    ]
    assert rules.counters["NoFrom"].matched == 1


async def test_a_missing_or_disabled_rule_drops_the_message_with_one_log_line(
    engine: tuple[RulesEngine, list[InboundMessage]], caplog: pytest.LogCaptureFixture
) -> None:
    rules, out = engine
    with caplog.at_level(logging.WARNING, "emulator.rules.engine"):
        rules.ingest(ingest("Nope", "a/b", {}))
        rules.ingest(ingest("Nope", "a/b", {}))
        rules.ingest(ingest("Paused", "off/x", {}))
    await next_turn()
    assert out == []
    assert rules.rule_not_found == 3 and rules.health()["rule_not_found"] == 3
    assert [r.getMessage() for r in caplog.records] == [
        "RuleNotFound: Basic Ingest message on '$aws/rules/Nope/a/b' from client 'dev' "
        "dropped: rule 'Nope' does not exist",
        "RuleNotFound: Basic Ingest message on '$aws/rules/Paused/off/x' from client 'dev' "
        "dropped: rule 'Paused' is disabled",
    ]


async def test_a_republish_to_a_basic_ingest_topic_runs_that_rule(
    engine: tuple[RulesEngine, list[InboundMessage]],
) -> None:
    rules, out = engine
    for n in (1, 2):  # the second takes the path of a topic already checked
        rules.handle(InboundMessage("forward/in", json.dumps({"n": n}).encode(), 0, False, "c"))
        await next_turn()
        await next_turn()
    assert [json.loads(m.payload) for m in out] == [
        {"t": "Buildings/B1/F9", "floor": "F9", "n": 1},  # no sourceip(): republished
        {"t": "Buildings/B1/F9", "floor": "F9", "n": 2},
    ]
    assert [m.hops for m in out] == [2, 2]


def test_the_context_carries_the_source_ip() -> None:
    msg = InboundMessage("a", b"{}", source_ip="192.0.2.1")
    assert MessageContexts().of_message(msg, {}).source_ip == "192.0.2.1"


def test_a_republished_message_has_no_source_ip() -> None:
    action = compile_action("republish", {"topic": "out"}, "2016-03-23")
    source = InboundMessage("in", b"{}", source_ip="192.0.2.1")
    ctx = MessageContexts().of_message(source, {})
    made = action.message(Env({}, ctx, "2016-03-23", b"{}"), {"a": 1}, source)
    assert made.source_ip is None
