"""IoT policy evaluation against the examples of the reference pages (pure, no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.broker.auth import ClientIdentity
from emulator.broker.policy import PolicyError, PolicySet
from emulator.config import REPO_ROOT
from emulator.resources import PolicySpec

ARN = "arn:aws:iot:us-east-1:123456789012"


def policy(*statements: dict[str, Any], name: str = "p") -> PolicySet:
    return PolicySet([PolicySpec(name, {"Version": "2012-10-17", "Statement": list(statements)})])


def allow(action: str | list[str], *resources: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": list(resources)}


def deny(action: str | list[str], *resources: str) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": list(resources)}


def who(client_id: str, ip: str = "10.0.0.7") -> ClientIdentity:
    return ClientIdentity(client_id, "anonymous", ip)


def allowed(p: PolicySet, client_id: str, action: str, resource: str) -> bool:
    return p.check(who(client_id), action, resource).allowed


def chat_policy() -> PolicySet:
    data = yaml.safe_load((REPO_ROOT / "rules" / "chat.yaml").read_text())
    return PolicySet([PolicySpec(p["policyName"], p["document"]) for p in data["policies"]])


@pytest.mark.parametrize(
    ("client", "action", "resource", "expected"),
    [
        ("web-1", "iot:Connect", "web-1", True),
        ("web-1", "iot:Publish", "chat/out", True),
        ("web-1", "iot:Publish", "chat/stream", True),
        ("web-1", "iot:Publish", "chat/pub/lobby", False),
        ("web-1", "iot:Publish", "chat/in/web-2", False),
        ("web-1", "iot:Publish", "chat/out/extra", False),
        ("web-1", "iot:RetainPublish", "chat/out", False),
        ("web-1", "iot:Subscribe", "chat/in/web-1", True),
        ("web-1", "iot:Subscribe", "chat/in/web-2", False),
        ("web-1", "iot:Subscribe", "chat/in/+", False),  # '+' is literal in a policy
        ("web-1", "iot:Subscribe", "chat/pub/lobby", True),
        ("web-1", "iot:Subscribe", "chat/pub/#", True),  # chat/pub/* matches the literal '#'
        ("web-1", "iot:Subscribe", "$aws/events/presence/#", False),
        ("web-1", "iot:Receive", "chat/in/web-1", True),
        ("web-1", "iot:Receive", "chat/in/web-2", False),
        ("web-1", "iot:Receive", "chat/pub/lobby", True),
        ("web-1", "iot:Receive", "chat/errors", False),
    ],
)
def test_the_chat_policy(client: str, action: str, resource: str, expected: bool) -> None:
    assert allowed(chat_policy(), client, action, resource) is expected


def test_client_id_variable_is_the_connecting_client() -> None:
    # basic-policy-variables.md
    p = policy(
        allow("iot:Connect", f"{ARN}:client/${{iot:ClientId}}"),
        allow("iot:Publish", f"{ARN}:topic/my/topic/${{iot:ClientId}}"),
    )
    assert allowed(p, "100-234-3456", "iot:Connect", "100-234-3456")
    assert allowed(p, "100-234-3456", "iot:Publish", "my/topic/100-234-3456")
    assert not allowed(p, "100-234-3456", "iot:Publish", "my/topic/other")


def test_a_client_id_of_plus_opens_a_topic_filter_as_the_docs_warn() -> None:
    p = policy(allow("iot:Subscribe", f"{ARN}:topicfilter/my/${{iot:ClientId}}/topic"))
    assert allowed(p, "+", "iot:Subscribe", "my/+/topic")
    assert not allowed(p, "+", "iot:Subscribe", "my/x/topic")


def test_a_client_id_with_wildcard_characters_is_literal() -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/t/${{iot:ClientId}}"))
    assert allowed(p, "a*", "iot:Publish", "t/a*")
    assert not allowed(p, "a*", "iot:Publish", "t/abc")


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("some/+/topic", True),  # pub-sub-policy.md: only the literal string matches
        ("some/x/topic", False),
        ("some/#", False),
    ],
)
def test_mqtt_wildcards_are_literal_in_policies(resource: str, expected: bool) -> None:
    p = policy(allow("iot:Subscribe", f"{ARN}:topicfilter/some/+/topic"))
    assert allowed(p, "client1", "iot:Subscribe", resource) is expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("some/string1/topic", True),
        ("some/+/topic", True),
        ("some/a/b/topic", True),  # '*' is not confined to one level
        ("some/topic", False),
        ("other/x/topic", False),
    ],
)
def test_star_matches_any_characters(resource: str, expected: bool) -> None:
    p = policy(allow("iot:Subscribe", f"{ARN}:topicfilter/some/*/topic"))
    assert allowed(p, "client1", "iot:Subscribe", resource) is expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [("room/a1", True), ("room/ab", True), ("room/a", False), ("room/a12", False)],
)
def test_question_mark_matches_one_character(resource: str, expected: bool) -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/room/??"))
    assert allowed(p, "c", "iot:Publish", resource) is expected


def test_explicit_deny_beats_allow_and_names_the_statement() -> None:
    p = policy(
        allow("iot:Subscribe", f"{ARN}:topicfilter/a/*"),
        deny("iot:Subscribe", f"{ARN}:topicfilter/a/restricted/*"),
    )
    assert allowed(p, "c", "iot:Subscribe", "a/open")
    decision = p.check(who("c"), "iot:Subscribe", "a/restricted/x")
    assert not decision.allowed
    assert decision.reason == "denied by policy p statement 1 (explicit Deny)"
    # ...and, as the docs warn, a/# is not a/restricted/*: '#' is literal
    assert allowed(p, "c", "iot:Subscribe", "a/#")


def test_not_resource_allows_receive_outside_a_subtree() -> None:
    p = policy(
        {"Effect": "Allow", "Action": "iot:Receive", "NotResource": f"{ARN}:topic/a/restricted/*"}
    )
    assert allowed(p, "c", "iot:Receive", "a/open")
    assert not allowed(p, "c", "iot:Receive", "a/restricted/x")


def test_not_action() -> None:
    p = policy({"Effect": "Allow", "NotAction": "iot:Publish", "Resource": "*"})
    assert allowed(p, "c", "iot:Subscribe", "x")
    assert not allowed(p, "c", "iot:Publish", "x")


def test_deny_receive_keeps_subscribe() -> None:
    # pub-sub-policy.md: block receiving on existing subscriptions with a Deny on Receive
    p = policy(
        allow("iot:Subscribe", f"{ARN}:topicfilter/device/update"),
        deny("iot:Receive", f"{ARN}:topic/device/update"),
    )
    assert allowed(p, "d", "iot:Subscribe", "device/update")
    assert not allowed(p, "d", "iot:Receive", "device/update")


def test_retain_publish_is_its_own_action() -> None:
    # retained-message-policy-examples.md
    p = policy(
        allow("iot:Connect", f"{ARN}:client/device1"),
        allow(["iot:Publish", "iot:RetainPublish"], f"{ARN}:topic/device/sample/configuration"),
    )
    assert allowed(p, "device1", "iot:RetainPublish", "device/sample/configuration")
    assert not allowed(p, "device2", "iot:Connect", "device2")
    assert not allowed(p, "device1", "iot:RetainPublish", "device/other")


@pytest.mark.parametrize(
    ("action", "expected"),
    [("iot:Publish", True), ("iot:publish", True), ("iot:Subscribe", False)],
)
def test_action_wildcards_and_case(action: str, expected: bool) -> None:
    p = policy(allow("iot:Pub*", "*"))
    assert allowed(p, "c", action, "t") is expected
    assert allowed(policy(allow("iot:*", "*")), "c", action, "t")


def test_region_and_account_are_part_of_the_arn() -> None:
    p = policy(allow("iot:Publish", "arn:aws:iot:eu-west-1:123456789012:topic/t"))
    assert not allowed(p, "c", "iot:Publish", "t")
    assert allowed(policy(allow("iot:Publish", "arn:aws:iot:*:*:topic/t")), "c", "iot:Publish", "t")


def test_source_ip_and_escape_variables() -> None:
    p = policy(
        allow("iot:Publish", f"{ARN}:topic/ip/${{aws:SourceIp}}"),
        allow("iot:Publish", f"{ARN}:topic/star/${{*}}"),
    )
    assert allowed(p, "c", "iot:Publish", "ip/10.0.0.7")
    assert not allowed(p, "c", "iot:Publish", "ip/10.0.0.8")
    assert allowed(p, "c", "iot:Publish", "star/*")
    assert not allowed(p, "c", "iot:Publish", "star/x")


def test_thing_variables_do_not_resolve_without_a_registry() -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/${{iot:Connection.Thing.ThingName}}/*"))
    assert not allowed(p, "thing1", "iot:Publish", "thing1/x")
    assert not allowed(p, "thing1", "iot:Publish", "/x")


def test_no_policy_means_implicit_deny() -> None:
    decision = PolicySet([]).check(who("c"), "iot:Connect", "c")
    assert not decision.allowed
    assert decision.reason.endswith("(implicit deny)")
    assert f"{ARN}:client/c" in decision.reason


def test_a_statement_with_a_condition_is_skipped_and_reported() -> None:
    p = policy({**allow("iot:Connect", "*"), "Condition": {"Bool": {"x": "true"}}})
    assert not allowed(p, "c", "iot:Connect", "c")
    assert p.warnings and "Condition" in p.warnings[0]


def test_documents_given_as_json_text_and_single_statements() -> None:
    text = '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}}'
    assert PolicySet([PolicySpec("j", text)]).check(who("c"), "iot:Connect", "c").allowed


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"Version": "2012-10-17"}, "needs a Statement"),
        (
            {"Statement": [{"Effect": "Maybe", "Action": "iot:*", "Resource": "*"}]},
            "statement 0: Effect",
        ),
        ({"Statement": [{"Effect": "Allow", "Resource": "*"}]}, "Action and NotAction"),
        ({"Statement": [{"Effect": "Allow", "Action": "iot:*"}]}, "Resource and NotResource"),
        ({"Statement": [{"Effect": "Allow", "Action": 5, "Resource": "*"}]}, "list of strings"),
        ("{not json", "not JSON"),
    ],
)
def test_invalid_documents_name_policy_and_statement(document: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        PolicySet([PolicySpec("broken", document)])
    assert "policy broken" in str(info.value)


def test_unknown_actions_are_refused() -> None:
    with pytest.raises(PolicyError, match="unsupported action"):
        policy(allow("iot:*", "*")).check(who("c"), "iot:Explode", "x")


def test_decisions_are_cached_per_client_and_resource() -> None:
    p = policy(allow("iot:Publish", f"{ARN}:topic/t/${{iot:ClientId}}"))
    first = p.check(who("a"), "iot:Publish", "t/a")
    assert p.check(who("a"), "iot:Publish", "t/a") is first
    assert not p.check(who("b"), "iot:Publish", "t/a").allowed


def test_policy_files_hold_documents_rules_or_templates(tmp_path: Path) -> None:
    from emulator.broker.policy_files import load_policy_files

    doc = tmp_path / "browser.json"
    doc.write_text('{"Version": "2012-10-17", "Statement": []}')
    names = [
        p.name for p in load_policy_files([doc, REPO_ROOT / "rules", REPO_ROOT / "template.yaml"])
    ]
    assert names == ["browser", "chat-browser", "chat-browser"]
    with pytest.raises(PolicyError, match="no such file"):
        load_policy_files([tmp_path / "missing.json"])
