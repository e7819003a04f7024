"""IoT policy evaluation against the examples of the reference pages (pure, no I/O).

Each ``EXAMPLES`` entry is a policy from ``/work/shared/reference/aws-iot`` (page and
heading named), and ``CASES`` says what it allows and denies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from emulator.broker.auth import ClientIdentity
from emulator.broker.policy import PolicyError, PolicySet, compile_policies
from emulator.config import REPO_ROOT
from emulator.project.model import PolicySpec, SourceRef

ARN = "arn:aws:iot:us-east-1:123456789012"


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def policy(*statements: dict[str, Any], name: str = "p") -> PolicySet:
    return compile_policies([PolicySpec(name, document(*statements))])


def allow(action: str | list[str], *resources: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": list(resources)}


def deny(action: str | list[str], *resources: str) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": list(resources)}


def who(client_id: str, ip: str = "10.0.0.7") -> ClientIdentity:
    return ClientIdentity(client_id, "anonymous", ip)


def allowed(p: PolicySet, client_id: str, action: str, resource: str) -> bool:
    return p.check(who(client_id), action, resource).allowed


CONNECT_CLIENTS_1_2_3 = allow(
    "iot:Connect", f"{ARN}:client/client1", f"{ARN}:client/client2", f"{ARN}:client/client3"
)
CONNECT_THING_NAME = allow("iot:Connect", f"{ARN}:client/${{iot:Connection.Thing.ThingName}}")

EXAMPLES: dict[str, dict[str, Any]] = {
    # connect-policy.md
    "connect-client1": document(allow("iot:Connect", f"{ARN}:client/client1")),
    "connect-deny-client1-2-allow-thing": document(
        deny("iot:Connect", f"{ARN}:client/client1", f"{ARN}:client/client2"),
        CONNECT_THING_NAME,
    ),
    "connect-unregistered-3": document(
        allow("iot:Connect", f"{ARN}:client/client1"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/my/topic"),
    ),
    "connect-registered-3": document(
        CONNECT_THING_NAME, allow("iot:Subscribe", f"{ARN}:topicfilter/my/topic/filter")
    ),
    # pub-sub-policy.md, "Policies for MQTT clients"
    "pubsub-registered-5": document(
        CONNECT_THING_NAME,
        allow("iot:Publish", f"{ARN}:topic/${{iot:Connection.Thing.ThingName}}/*"),
    ),
    "pubsub-unregistered-5": document(
        CONNECT_CLIENTS_1_2_3, allow("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}/*")
    ),
    "pubsub-unregistered-6": document(
        CONNECT_CLIENTS_1_2_3,
        allow("iot:Subscribe", f"{ARN}:topicfilter/${{iot:ClientId}}/room*"),
        allow("iot:Receive", f"{ARN}:topic/${{iot:ClientId}}/room*"),
    ),
    "pubsub-a-except-restricted": document(
        allow("iot:Subscribe", f"{ARN}:topicfilter/a/*"),
        deny("iot:Subscribe", f"{ARN}:topicfilter/a/restricted/*"),
        {"Effect": "Allow", "Action": "iot:Receive", "NotResource": f"{ARN}:topic/a/restricted/*"},
    ),
    "pubsub-deny-receive": document(
        allow("iot:Subscribe", f"{ARN}:topicfilter/device/update"),
        deny("iot:Receive", f"{ARN}:topic/device/update"),
    ),
    "pubsub-unregistered-4-plus": document(
        allow("iot:Connect", f"{ARN}:client/client1"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/some/+/topic"),
    ),
    "pubsub-unregistered-4-star": document(
        allow("iot:Connect", f"{ARN}:client/client1"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/some/*/topic"),
    ),
    "pubsub-unregistered-7": document(
        allow("iot:Connect", f"{ARN}:client/client1"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/my/topic", f"{ARN}:topicfilter/my/othertopic"),
    ),
    "pubsub-unregistered-8": document(
        allow("iot:Connect", f"{ARN}:client/client1"),
        allow("iot:Publish", f"{ARN}:topic/my/topic/${{iot:ClientId}}"),
    ),
    "pubsub-registered-9": document(
        CONNECT_THING_NAME,
        allow("iot:Publish", f"{ARN}:topic/${{iot:Thing.ThingName}}/*"),
        deny("iot:Publish", f"{ARN}:topic/${{iot:Thing.ThingName}}/bar"),
    ),
    "pubsub-unregistered-9": document(
        allow("iot:Connect", f"{ARN}:client/client1", f"{ARN}:client/client2"),
        allow("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}/*"),
        deny("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}/bar"),
    ),
    "pubsub-iotmonitor": document(
        allow("iot:Connect", f"{ARN}:client/client1"),
        allow(["iot:Publish", "iot:Receive"], f"{ARN}:topic/iotmonitor/provisioning/987654321098"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/iotmonitor/provisioning/987654321098"),
    ),
    "receive-unregistered-11": document(
        allow("iot:Connect", f"{ARN}:client/client1"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/my/topic"),
        allow("iot:Receive", f"{ARN}:topic/my/topic"),
    ),
    # basic-policy-variables.md
    "basic-variables": document(
        allow("iot:Connect", f"{ARN}:client/${{iot:ClientId}}"),
        allow("iot:Publish", f"{ARN}:topic/my/topic/${{iot:ClientId}}"),
    ),
    "basic-subscribe-client-id": document(
        allow("iot:Subscribe", f"{ARN}:topicfilter/my/${{iot:ClientId}}/topic")
    ),
    # retained-message-policy-examples.md (the page's first JSON has a stray brace)
    "retained-publish": document(
        allow("iot:Connect", f"{ARN}:client/device1"),
        allow(["iot:Publish", "iot:RetainPublish"], f"{ARN}:topic/device/sample/configuration"),
    ),
    "retained-will": document(
        {
            **allow("iot:Connect", f"{ARN}:client/*"),
            "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}},
        },
        allow(["iot:Publish", "iot:RetainPublish"], f"{ARN}:topic/will"),
    ),
}

CASES = [
    # (example, client, action, resource, expected)
    ("connect-client1", "client1", "iot:Connect", "client1", True),
    ("connect-client1", "client2", "iot:Connect", "client2", False),
    ("connect-client1", "client1", "iot:Connect", "Client1", False),  # ARNs are case-sensitive
    ("connect-client1", "client1", "iot:Publish", "client1", False),
    ("connect-deny-client1-2-allow-thing", "client1", "iot:Connect", "client1", False),
    ("connect-deny-client1-2-allow-thing", "thing1", "iot:Connect", "thing1", False),  # no thing
    ("connect-unregistered-3", "client1", "iot:Subscribe", "my/topic", True),
    ("connect-unregistered-3", "client1", "iot:Subscribe", "my/topic/filter", False),
    ("connect-unregistered-3", "client1", "iot:Subscribe", "my/#", False),
    ("connect-registered-3", "thing1", "iot:Connect", "thing1", False),
    ("connect-registered-3", "thing1", "iot:Subscribe", "my/topic/filter", True),
    ("pubsub-registered-5", "thing1", "iot:Publish", "thing1/x", False),
    ("pubsub-unregistered-5", "client2", "iot:Connect", "client2", True),
    ("pubsub-unregistered-5", "client4", "iot:Connect", "client4", False),
    ("pubsub-unregistered-5", "client2", "iot:Publish", "client2/a", True),
    ("pubsub-unregistered-5", "client2", "iot:Publish", "client2/a/b/c", True),
    ("pubsub-unregistered-5", "client2", "iot:Publish", "client2", False),
    ("pubsub-unregistered-5", "client2", "iot:Publish", "client1/a", False),
    ("pubsub-unregistered-5", "client2", "iot:Subscribe", "client2/a", False),
    ("pubsub-unregistered-6", "client1", "iot:Subscribe", "client1/room1", True),
    ("pubsub-unregistered-6", "client1", "iot:Subscribe", "client1/room", True),
    ("pubsub-unregistered-6", "client1", "iot:Subscribe", "client1/room/#", True),
    ("pubsub-unregistered-6", "client1", "iot:Subscribe", "client1/+", False),
    ("pubsub-unregistered-6", "client1", "iot:Subscribe", "client2/room1", False),
    ("pubsub-unregistered-6", "client1", "iot:Receive", "client1/room2", True),
    ("pubsub-unregistered-6", "client1", "iot:Receive", "client1/lobby", False),
    ("pubsub-a-except-restricted", "c", "iot:Subscribe", "a/open", True),
    ("pubsub-a-except-restricted", "c", "iot:Subscribe", "a/restricted/x", False),
    ("pubsub-a-except-restricted", "c", "iot:Subscribe", "a/#", True),  # the page's warning
    ("pubsub-a-except-restricted", "c", "iot:Subscribe", "a/restricted/#", False),
    ("pubsub-a-except-restricted", "c", "iot:Receive", "a/open", True),
    ("pubsub-a-except-restricted", "c", "iot:Receive", "a/restricted/x", False),  # the fix
    ("pubsub-a-except-restricted", "c", "iot:Receive", "b/x", True),  # NotResource: anything else
    ("pubsub-deny-receive", "d", "iot:Subscribe", "device/update", True),
    ("pubsub-deny-receive", "d", "iot:Receive", "device/update", False),
    ("pubsub-unregistered-4-plus", "client1", "iot:Subscribe", "some/+/topic", True),
    ("pubsub-unregistered-4-plus", "client1", "iot:Subscribe", "some/string1/topic", False),
    ("pubsub-unregistered-4-plus", "client1", "iot:Subscribe", "some/#", False),
    ("pubsub-unregistered-4-star", "client1", "iot:Subscribe", "some/string1/topic", True),
    ("pubsub-unregistered-4-star", "client1", "iot:Subscribe", "some/+/topic", True),
    ("pubsub-unregistered-4-star", "client1", "iot:Subscribe", "some/a/b/topic", True),
    ("pubsub-unregistered-4-star", "client1", "iot:Subscribe", "some//topic", True),
    ("pubsub-unregistered-4-star", "client1", "iot:Subscribe", "some/topic", False),
    ("pubsub-unregistered-4-star", "client1", "iot:Subscribe", "some/x/topic/y", False),
    ("pubsub-unregistered-7", "client1", "iot:Subscribe", "my/topic", True),
    ("pubsub-unregistered-7", "client1", "iot:Subscribe", "my/othertopic", True),
    ("pubsub-unregistered-7", "client1", "iot:Subscribe", "my/+", False),
    ("pubsub-unregistered-7", "client1", "iot:Receive", "my/topic", False),  # Receive not granted
    ("pubsub-unregistered-8", "client1", "iot:Publish", "my/topic/client1", True),
    ("pubsub-unregistered-8", "client9", "iot:Publish", "my/topic/client9", True),  # no Connect
    ("pubsub-unregistered-8", "client1", "iot:Publish", "my/topic/client9", False),
    ("pubsub-registered-9", "thing1", "iot:Publish", "thing1/foo", False),
    ("pubsub-unregistered-9", "client1", "iot:Publish", "client1/foo", True),
    ("pubsub-unregistered-9", "client1", "iot:Publish", "client1/bar", False),
    ("pubsub-unregistered-9", "client1", "iot:Publish", "client1/bar/baz", True),
    ("pubsub-unregistered-9", "client3", "iot:Connect", "client3", False),
    ("pubsub-iotmonitor", "client1", "iot:Publish", "iotmonitor/provisioning/987654321098", True),
    ("pubsub-iotmonitor", "client1", "iot:Receive", "iotmonitor/provisioning/987654321098", True),
    ("pubsub-iotmonitor", "x", "iot:Subscribe", "iotmonitor/provisioning/987654321098", True),
    ("pubsub-iotmonitor", "client1", "iot:Subscribe", "iotmonitor/provisioning/+", False),
    ("pubsub-iotmonitor", "client1", "iot:Publish", "iotmonitor/provisioning/1", False),
    ("receive-unregistered-11", "client1", "iot:Receive", "my/topic", True),
    ("receive-unregistered-11", "client1", "iot:Receive", "my/topic2", False),
    ("basic-variables", "100-234-3456", "iot:Connect", "100-234-3456", True),
    ("basic-variables", "100-234-3456", "iot:Connect", "other", False),
    ("basic-variables", "100-234-3456", "iot:Publish", "my/topic/100-234-3456", True),
    ("basic-variables", "100-234-3456", "iot:Publish", "my/topic/other", False),
    ("basic-subscribe-client-id", "+", "iot:Subscribe", "my/+/topic", True),  # the page's warning
    ("basic-subscribe-client-id", "+", "iot:Subscribe", "my/x/topic", False),
    ("basic-subscribe-client-id", "x", "iot:Subscribe", "my/+/topic", False),
    ("retained-publish", "device1", "iot:Connect", "device1", True),
    ("retained-publish", "device2", "iot:Connect", "device2", False),
    ("retained-publish", "device1", "iot:Publish", "device/sample/configuration", True),
    ("retained-publish", "device1", "iot:RetainPublish", "device/sample/configuration", True),
    ("retained-publish", "device1", "iot:RetainPublish", "device/other", False),
    ("retained-will", "c", "iot:Connect", "c", False),  # Condition: statement skipped
    ("retained-will", "c", "iot:RetainPublish", "will", True),
    ("retained-will", "c", "iot:RetainPublish", "will/x", False),
]


@pytest.mark.parametrize(("example", "client", "action", "resource", "expected"), CASES)
def test_reference_examples(
    example: str, client: str, action: str, resource: str, expected: bool
) -> None:
    p = compile_policies([PolicySpec(example, EXAMPLES[example])])
    decision = p.check(who(client), action, resource)
    assert decision.allowed is expected, decision.reason
    assert f"policy {example} statement " in decision.reason or "implicit deny" in decision.reason


def test_every_example_has_cases() -> None:
    assert {c[0] for c in CASES} == set(EXAMPLES)


def chat_policy() -> PolicySet:
    data = yaml.safe_load((REPO_ROOT / "rules" / "chat.yaml").read_text())
    return compile_policies([PolicySpec(p["policyName"], p["document"]) for p in data["policies"]])


@pytest.mark.parametrize(
    ("client", "action", "resource", "expected"),
    [
        ("web-1", "iot:Connect", "web-1", True),
        ("anything", "iot:Connect", "anything", True),
        ("web-1", "iot:Publish", "chat/out", True),
        ("web-1", "iot:Publish", "chat/stream", True),
        ("web-1", "iot:Publish", "chat/pub/lobby", False),
        ("web-1", "iot:Publish", "chat/in/web-2", False),
        ("web-1", "iot:Publish", "chat/out/extra", False),
        ("web-1", "iot:RetainPublish", "chat/out", False),
        ("web-1", "iot:Subscribe", "chat/in/web-1", True),
        ("web-1", "iot:Subscribe", "chat/in/web-2", False),
        ("web-1", "iot:Subscribe", "chat/in/+", False),  # '+' is literal in a policy
        ("web-1", "iot:Subscribe", "chat/in/#", False),
        ("web-1", "iot:Subscribe", "chat/pub/lobby", True),
        ("web-1", "iot:Subscribe", "chat/pub/#", True),  # chat/pub/* matches the literal '#'
        ("web-1", "iot:Subscribe", "chat/pub/+", True),
        ("web-1", "iot:Subscribe", "chat/#", False),
        ("web-1", "iot:Subscribe", "$aws/events/presence/#", False),
        ("web-1", "iot:Receive", "chat/in/web-1", True),
        ("web-1", "iot:Receive", "chat/in/web-2", False),
        ("web-1", "iot:Receive", "chat/pub/lobby", True),
        ("web-1", "iot:Receive", "chat/errors", False),
    ],
)
def test_the_chat_policy(client: str, action: str, resource: str, expected: bool) -> None:
    assert allowed(chat_policy(), client, action, resource) is expected


def test_the_chat_policy_compiles_without_warnings() -> None:
    assert chat_policy().warnings == ()


# -- wildcards --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "expected"),
    [("room/a1", True), ("room/ab", True), ("room/a", False), ("room/a12", False)],
)
def test_question_mark_matches_one_character(resource: str, expected: bool) -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/room/??"))
    assert allowed(p, "c", "iot:Publish", resource) is expected


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        # IAM "Using wildcards in resource ARNs": wildcards stay within a colon-separated
        # segment, but a '*' that ends a segment may run past colons.
        ("topic/a:*", "a:b", True),
        ("topic/*", "a:b:c", True),
        ("topic/*/x", "a:b/x", False),
        ("topic/*/x", "ab/x", True),
        ("topic/a?b", "a:b", False),
        ("topic/a?b", "a/b", True),
        ("topic/a*:b", "ax:b", True),
    ],
)
def test_wildcards_and_colons(pattern: str, topic: str, expected: bool) -> None:
    p = policy(allow("iot:Publish", f"{ARN}:{pattern}"))
    assert allowed(p, "c", "iot:Publish", topic) is expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("*", True),
        ("arn:aws:iot:*", True),
        ("arn:aws:iot:*:*:topic/t", True),
        ("arn:aws:iot:us-east-?:123456789012:topic/t", True),
        ("arn:aws:iot:us-*:*:*", True),
        ("arn:aws:iot:eu-west-1:123456789012:topic/t", False),
        ("arn:aws:iot:us-east-1:999999999999:topic/t", False),
        ("arn:aws:iot:us-east-1:123456789012:topicfilter/t", False),
        ("arn:aws:iot:us-east-1:123456789012:*/t", True),
    ],
)
def test_wildcards_in_region_account_and_type(resource: str, expected: bool) -> None:
    assert allowed(policy(allow("iot:Publish", resource)), "c", "iot:Publish", "t") is expected


@pytest.mark.parametrize(
    ("actions", "action", "expected"),
    [
        ("iot:Pub*", "iot:Publish", True),
        ("iot:Pub*", "iot:publish", True),  # action names are case-insensitive
        ("IOT:PUBLISH", "iot:Publish", True),
        ("iot:Pub*", "iot:Subscribe", False),
        ("iot:*", "iot:Subscribe", True),
        ("*", "iot:Receive", True),
        ("iot:?eceive", "iot:Receive", True),
        ("iot:*Publish", "iot:RetainPublish", True),
        (["iot:Connect", "iot:Receive"], "iot:Receive", True),
        (["iot:Connect", "iot:Receive"], "iot:Publish", False),
    ],
)
def test_action_wildcards_and_case(actions: str | list[str], action: str, expected: bool) -> None:
    assert allowed(policy(allow(actions, "*")), "c", action, "t") is expected


# -- Deny, NotAction, NotResource, several policies --------------------------------------
def test_explicit_deny_beats_allow_and_names_the_statement() -> None:
    p = policy(
        allow("iot:Subscribe", f"{ARN}:topicfilter/a/*"),
        deny("iot:Subscribe", f"{ARN}:topicfilter/a/restricted/*"),
    )
    decision = p.check(who("c"), "iot:Subscribe", "a/restricted/x")
    assert decision == p.check(who("c"), "iot:Subscribe", "a/restricted/x")
    assert not decision.allowed
    assert decision.reason == "denied by policy p statement 1 (explicit Deny)"
    assert p.check(who("c"), "iot:Subscribe", "a/x").reason == "allowed by policy p statement 0"


def test_a_deny_in_one_policy_beats_an_allow_in_another() -> None:
    p = compile_policies(
        [
            PolicySpec("open", document(allow("iot:*", "*"))),
            PolicySpec("locked", document(deny("iot:Publish", f"{ARN}:topic/locked/*"))),
        ]
    )
    decision = p.check(who("c"), "iot:Publish", "locked/x")
    assert decision.reason == "denied by policy locked statement 0 (explicit Deny)"
    assert p.check(who("c"), "iot:Publish", "free").reason == "allowed by policy open statement 0"


def test_the_first_allowing_statement_is_named() -> None:
    p = policy(allow("iot:Connect", "*"), allow("iot:Connect", f"{ARN}:client/c"))
    decision, statement = p.explain(who("c"), "iot:Connect", "c")
    assert decision.reason == "allowed by policy p statement 0"
    assert statement is not None and statement.source == allow("iot:Connect", "*")


def test_implicit_deny_names_the_arn() -> None:
    decision, statement = compile_policies([]).explain(who("c"), "iot:Connect", "c")
    assert not decision.allowed and statement is None
    assert decision.reason == f"no statement allows iot:Connect on {ARN}:client/c (implicit deny)"


@pytest.mark.parametrize(
    ("action", "expected"),
    [("iot:Subscribe", True), ("iot:Receive", True), ("iot:Publish", False)],
)
def test_not_action(action: str, expected: bool) -> None:
    p = policy({"Effect": "Allow", "NotAction": "iot:Publish", "Resource": "*"})
    assert allowed(p, "c", action, "x") is expected


def test_deny_with_not_resource_denies_everything_else() -> None:
    p = policy(
        allow("iot:Publish", "*"),
        {"Effect": "Deny", "Action": "iot:Publish", "NotResource": [f"{ARN}:topic/ok/*"]},
    )
    assert allowed(p, "c", "iot:Publish", "ok/1")
    assert not allowed(p, "c", "iot:Publish", "other")


def test_not_action_with_not_resource() -> None:
    p = policy({"Effect": "Allow", "NotAction": "iot:Connect", "NotResource": f"{ARN}:topic/x"})
    assert allowed(p, "c", "iot:Publish", "y")
    assert not allowed(p, "c", "iot:Publish", "x")
    assert allowed(p, "c", "iot:Receive", "x/y")
    assert not allowed(p, "c", "iot:Connect", "c")


# -- policy variables -------------------------------------------------------------------
def test_a_client_id_with_wildcard_characters_is_literal() -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/t/${{iot:ClientId}}"))
    assert allowed(p, "a*", "iot:Publish", "t/a*")
    assert not allowed(p, "a*", "iot:Publish", "t/abc")
    assert allowed(p, "a?c", "iot:Publish", "t/a?c")
    assert not allowed(p, "a?c", "iot:Publish", "t/abc")


def test_source_ip_and_escape_variables() -> None:
    p = policy(
        allow("iot:Publish", f"{ARN}:topic/ip/${{aws:SourceIp}}"),
        allow("iot:Publish", f"{ARN}:topic/star/${{*}}"),
        allow("iot:Publish", f"{ARN}:topic/q/${{?}}"),
        allow("iot:Publish", f"{ARN}:topic/dollar/${{$}}{{x}}"),
    )
    assert allowed(p, "c", "iot:Publish", "ip/10.0.0.7")
    assert not allowed(p, "c", "iot:Publish", "ip/10.0.0.8")
    assert p.check(who("c", "10.0.0.8"), "iot:Publish", "ip/10.0.0.8").allowed
    assert allowed(p, "c", "iot:Publish", "star/*")
    assert not allowed(p, "c", "iot:Publish", "star/x")
    assert allowed(p, "c", "iot:Publish", "q/?")
    assert not allowed(p, "c", "iot:Publish", "q/x")
    assert allowed(p, "c", "iot:Publish", "dollar/${x}")


def test_variable_names_are_case_insensitive() -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/${{IOT:clientid}}"))
    assert allowed(p, "c1", "iot:Publish", "c1")


def test_is_attached_is_false_without_a_thing_registry() -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/attached/${{iot:Connection.Thing.IsAttached}}"))
    assert allowed(p, "c", "iot:Publish", "attached/false")
    assert not allowed(p, "c", "iot:Publish", "attached/true")
    assert p.warnings == ()


@pytest.mark.parametrize(
    "variable",
    [
        "iot:Connection.Thing.ThingName",
        "iot:Connection.Thing.ThingTypeName",
        "iot:Connection.Thing.Attributes[color]",
        "iot:Thing.ThingName",
        "iot:Certificate.Subject.CommonName",
        "cognito-identity.amazonaws.com:sub",
        "iot:NoSuchThing",
    ],
)
def test_unresolvable_variables_make_their_resource_match_nothing(variable: str) -> None:
    p = policy(
        allow("iot:Publish", f"{ARN}:topic/${{{variable}}}/*", f"{ARN}:topic/open"),
        deny("iot:Publish", f"{ARN}:topic/${{{variable}}}/*"),
    )
    assert not allowed(p, "thing1", "iot:Publish", "thing1/x")
    assert not allowed(p, "thing1", "iot:Publish", "/x")
    assert not allowed(p, "thing1", "iot:Publish", "${" + variable + "}/x")
    assert allowed(p, "thing1", "iot:Publish", "open")  # the other resource, and no Deny
    assert any(variable in w and "matches nothing" in w for w in p.warnings)


def test_without_version_2012_variables_are_literal_text() -> None:
    statement = allow("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}")
    for doc in ({"Statement": [statement]}, {"Version": "2008-10-17", "Statement": [statement]}):
        p = compile_policies([PolicySpec("old", doc)])
        assert not allowed(p, "c", "iot:Publish", "c")
        assert allowed(p, "c", "iot:Publish", "${iot:ClientId}")
        assert "policy variables are literal text" in p.warnings[0]


def test_an_unquoted_yaml_version_is_read_as_the_string() -> None:
    doc = yaml.safe_load(
        "Version: 2012-10-17\nStatement: {Effect: Allow, Action: iot:Connect,"
        " Resource: 'arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}'}"
    )
    assert allowed(compile_policies([PolicySpec("y", doc)]), "c", "iot:Connect", "c")


_CLIENT_IDS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@given(_CLIENT_IDS, _CLIENT_IDS)
def test_client_id_variable_matches_exactly_the_client_id(client_id: str, other: str) -> None:
    p = policy(allow(["iot:Connect", "iot:Publish"], f"{ARN}:client/${{iot:ClientId}}"))
    assert allowed(p, client_id, "iot:Connect", client_id)
    assert allowed(p, client_id, "iot:Connect", other) is (other == client_id)


@given(st.text(st.characters(blacklist_characters="*?$", blacklist_categories=("Cs",))))
def test_a_resource_without_wildcards_matches_only_itself(topic: str) -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/{topic}"))
    assert allowed(p, "c", "iot:Publish", topic)
    assert not allowed(p, "c", "iot:Publish", topic + "x")
    assert not allowed(p, "c", "iot:Publish", "x" + topic)


# -- caching ----------------------------------------------------------------------------
def test_decisions_are_cached_per_client_and_resource() -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/t/${{iot:ClientId}}"))
    first = p.check(who("a"), "iot:Publish", "t/a")
    assert p.check(who("a"), "iot:Publish", "t/a") is first
    assert not p.check(who("b"), "iot:Publish", "t/a").allowed
    assert p.check(who("b"), "iot:Publish", "t/b").allowed


def test_the_decision_cache_is_bounded_and_stays_correct() -> None:
    p = PolicySet(
        [PolicySpec("p", document(allow("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}/*")))],
        cache_size=8,
    )
    for round_ in range(3):
        for n in range(50):
            assert allowed(p, f"c{n}", "iot:Publish", f"c{n}/x"), round_
            assert not allowed(p, f"c{n}", "iot:Publish", f"c{n + 1}/x"), round_
    assert len(p._decisions) == 8


# -- the public API ---------------------------------------------------------------------
def test_compile_policies_uses_the_region_and_account() -> None:
    p = compile_policies(
        [PolicySpec("eu", document(allow("iot:Connect", "arn:aws:iot:eu-west-1:111:client/*")))],
        region="eu-west-1",
        account="111",
    )
    assert p.arn("iot:Connect", "c") == "arn:aws:iot:eu-west-1:111:client/c"
    assert allowed(p, "c", "iot:Connect", "c")
    default = policy(allow("iot:Connect", "arn:aws:iot:eu-west-1:111:client/*"))
    assert not allowed(default, "c", "iot:Connect", "c")  # us-east-1 and 123456789012


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("iot:Connect", "client"),
        ("iot:Publish", "topic"),
        ("iot:Receive", "topic"),
        ("iot:RetainPublish", "topic"),
        ("iot:Subscribe", "topicfilter"),
    ],
)
def test_each_action_is_checked_against_its_resource_type(action: str, kind: str) -> None:
    assert compile_policies([]).arn(action, "x") == f"{ARN}:{kind}/x"


def test_unknown_actions_are_refused() -> None:
    with pytest.raises(PolicyError, match="unsupported action 'iot:Explode'"):
        policy(allow("iot:*", "*")).check(who("c"), "iot:Explode", "x")


def test_documents_given_as_json_text_and_single_statements() -> None:
    text = '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}}'
    assert allowed(compile_policies([PolicySpec("j", text)]), "c", "iot:Connect", "c")


# -- invalid documents and warnings -----------------------------------------------------
@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"Version": "2012-10-17"}, "policy broken: a policy document needs a Statement"),
        ([], "policy broken: a policy document needs a Statement"),
        ("{not json", "policy broken: the document is not JSON"),
        ({"Statement": "x"}, "policy broken: Statement must be an object or a list"),
        ({"Statement": ["x"]}, "policy broken statement 0: a statement must be an object"),
        (
            {"Statement": [{"Effect": "Maybe", "Action": "iot:*", "Resource": "*"}]},
            "policy broken statement 0: Effect must be Allow or Deny, got 'Maybe'",
        ),
        (
            {"Statement": [{"Effect": "allow", "Action": "iot:*", "Resource": "*"}]},
            "policy broken statement 0: Effect must be Allow or Deny, got 'allow'",
        ),
        (
            {"Statement": [{"Effect": "Allow", "Resource": "*"}]},
            "policy broken statement 0: needs exactly one of Action and NotAction",
        ),
        (
            {"Statement": [{"Effect": "Allow", "Action": "a", "NotAction": "b", "Resource": "*"}]},
            "policy broken statement 0: needs exactly one of Action and NotAction",
        ),
        (
            {"Statement": [{"Effect": "Allow", "Action": "iot:*"}]},
            "policy broken statement 0: needs exactly one of Resource and NotResource",
        ),
        (
            {"Statement": [{"Effect": "Allow", "Action": 5, "Resource": "*"}]},
            "policy broken statement 0: Action must be a string or a list of strings, got 5",
        ),
        (
            {"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": ["a", 1]}]},
            "policy broken statement 0: Resource must be a string or a list of strings",
        ),
        (
            {"Version": "2020-01-01", "Statement": []},
            "policy broken: Version must be 2012-10-17 or 2008-10-17, got 2020-01-01",
        ),
    ],
)
def test_invalid_documents_name_policy_and_statement(doc: Any, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        compile_policies([PolicySpec("broken", doc)])
    assert message in str(info.value)


def test_every_error_is_reported_with_where_the_policy_was_declared() -> None:
    good = allow("iot:*", "*")
    specs = [
        PolicySpec(
            "one",
            document(good, {"Effect": "Perhaps", "Action": "iot:*", "Resource": "*"}),
            SourceRef(Path("rules/x.yaml"), 12, 5),
        ),
        PolicySpec("two", document({"Effect": "Allow", "Action": "iot:*"}, good)),
    ]
    with pytest.raises(PolicyError) as info:
        compile_policies(specs)
    assert info.value.errors == (
        "rules/x.yaml:12:5: policy one statement 1: Effect must be Allow or Deny, got 'Perhaps'",
        "policy two statement 0: needs exactly one of Resource and NotResource",
    )


def test_a_statement_with_a_condition_is_skipped_and_reported() -> None:
    p = policy(
        allow("iot:Connect", "*"),
        {**deny("iot:Connect", "*"), "Condition": {"Bool": {"x": "true"}}},
    )
    assert allowed(p, "c", "iot:Connect", "c")
    assert p.warnings == (
        "policy p statement 1: Condition is not evaluated; the statement is skipped "
        "(a Deny skipped here may allow what AWS denies)",
    )


@pytest.mark.parametrize(
    ("statement", "warning"),
    [
        (
            allow("iot:Subcribe", f"{ARN}:topicfilter/x"),
            "policy p statement 0: 'iot:Subcribe' is not an AWS IoT action; it matches nothing",
        ),
        (
            allow("iot:Subscribe", f"{ARN}:topic/x"),
            "policy p statement 0: iot:Subscribe is checked against topicfilter/ ARNs but the "
            "resources are topic/ ARNs",
        ),
        (
            allow(["iot:Publish", "iot:Receive"], f"{ARN}:topicfilter/x"),
            "policy p statement 0: iot:Publish, iot:Receive is checked against topic/ ARNs but "
            "the resources are topicfilter/ ARNs",
        ),
        (
            allow("iot:Publish", "arn:aws:iot:eu-west-1:123456789012:topic/x"),
            "policy p statement 0: resource 'arn:aws:iot:eu-west-1:123456789012:topic/x' names "
            "region 'eu-west-1', the emulator's region is 'us-east-1'; it never matches here",
        ),
        (
            allow("iot:Publish", "arn:aws:iot:us-east-1:000000000000:topic/x"),
            "policy p statement 0: resource 'arn:aws:iot:us-east-1:000000000000:topic/x' names "
            "account '000000000000', the emulator's account is '123456789012'; it never "
            "matches here",
        ),
        (
            allow("iot:Publish", "topic/x"),
            "policy p statement 0: resource 'topic/x' is not an ARN; it matches nothing",
        ),
        (
            {**allow("iot:Publish", "*"), "Principal": "*"},
            "policy p statement 0: unknown key 'Principal' is ignored",
        ),
    ],
)
def test_mistakes_aws_accepts_are_reported(statement: dict[str, Any], warning: str) -> None:
    assert policy(statement).warnings == (warning,)


@pytest.mark.parametrize(
    "statement",
    [
        allow("iot:*", f"{ARN}:topic/x"),  # wildcard actions name several resource types
        allow(["iot:Publish", "iot:Subscribe"], f"{ARN}:topic/x", f"{ARN}:topicfilter/x"),
        allow("iot:Subscribe", f"{ARN}:*/x"),
        allow("iot:Subscribe", "*"),
        allow("iot:GetRetainedMessage", f"{ARN}:topic/foo"),
        allow("iot:ListRetainedMessages", "*"),
        {"Effect": "Allow", "NotAction": "iot:Subscribe", "Resource": f"{ARN}:topic/x"},
    ],
)
def test_correct_statements_are_not_reported(statement: dict[str, Any]) -> None:
    assert policy(statement).warnings == ()


def test_policy_files_hold_documents_rules_or_templates(tmp_path: Path) -> None:
    from emulator.project.policy_files import load_policy_files

    doc = tmp_path / "browser.json"
    doc.write_text('{"Version": "2012-10-17", "Statement": []}')
    names = [
        p.name for p in load_policy_files([doc, REPO_ROOT / "rules", REPO_ROOT / "template.yaml"])
    ]
    assert names == ["browser", "chat-browser", "chat-browser"]
    with pytest.raises(PolicyError, match="no such file"):
        load_policy_files([tmp_path / "missing.json"])
